package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// Error codes of the envelope. They are part of the API: clients switch on them.
const (
	codeBadRequest       = "bad_request"
	codeMalformedJSON    = "malformed_json"
	codeValidation       = "validation_failed"
	codeBodyTooLarge     = "body_too_large"
	codeUnsupportedMedia = "unsupported_media_type"
	codeUnauthorized     = "unauthorized"
	codeForbidden        = "forbidden"
	codeNotFound         = "not_found"
	codeConflict         = "conflict"
	codeMethod           = "method_not_allowed"
	codeInternal         = "internal"
	codeBadGateway       = "bad_gateway"
	codeRequestTimeout   = "request_timeout"
	codeUnavailable      = "unavailable"
)

// apiError is what every failed request answers, inside {"error": ...}.
type apiError struct {
	status    int
	allow     string
	Code      string            `json:"code"`
	Message   string            `json:"message"`
	Fields    map[string]string `json:"fields,omitempty"`
	RequestID string            `json:"request_id,omitempty"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func fieldError(fields map[string]string) *apiError {
	e := newError(http.StatusBadRequest, codeValidation, "the request has invalid fields")
	e.Fields = fields
	return e
}

// inputError answers the field errors of err (see fieldsOf) as the request's, named as sent.
func inputError(err error) error {
	if fields, ok := fieldsOf(err); ok {
		return fieldError(fields)
	}
	return err
}

// writeError answers err in the envelope; errors that are not *apiError become field errors
// (a package's validation error), 500s (and are logged) or, for the store's sentinels, 404
// and 409.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		ae   *apiError
		list *validate.List
	)
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &list):
		// A package's validation error that no capability names as a spec's is the request's,
		// as from a Route checking its input with the package.
		ae = fieldError(list.Fields())
	case errors.Is(err, store.ErrNotFound):
		ae = newError(http.StatusNotFound, codeNotFound, "%s", strings.TrimSuffix(err.Error(), ": "+store.ErrNotFound.Error())+" not found")
	case errors.Is(err, store.ErrConflict):
		ae = newError(http.StatusConflict, codeConflict, "%s", strings.TrimSuffix(err.Error(), ": "+store.ErrConflict.Error()))
	default:
		s.log.ErrorContext(r.Context(), "request failed", "err", err, "request_id", requestID(r.Context()))
		ae = newError(http.StatusInternalServerError, codeInternal, "internal error; see the server log for request %s", requestID(r.Context()))
	}
	if ae.allow != "" {
		w.Header().Set("Allow", ae.allow)
	}
	out := *ae
	out.RequestID = requestID(r.Context())
	writeJSON(w, ae.status, map[string]any{"error": out})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// decode reads one JSON object into v: the body must be JSON, within the size limit, with
// no unknown fields and nothing after the object; then v is validated.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	if err := s.decodeJSON(w, r, v); err != nil {
		return err
	}
	return s.validate(v)
}

// decodeJSON is decode without the validation, for bodies that are not structs. The body is
// read whole (it is bounded) so that a field error can name the field's place in it.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return newError(http.StatusUnsupportedMediaType, codeUnsupportedMedia, "Content-Type must be application/json, got %q", ct)
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return decodeError(err, nil, nil)
		}
		return newError(http.StatusBadRequest, codeBadRequest, "read the body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, data, v)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return newError(http.StatusBadRequest, codeMalformedJSON, "the body must hold exactly one JSON object")
	}
	return nil
}

// decodeError answers err, from decoding data into v; a field's error names its JSON path in
// data.
func decodeError(err error, data []byte, v any) *apiError {
	var (
		syntax   *json.SyntaxError
		typeErr  *json.UnmarshalTypeError
		tooLarge *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooLarge):
		return newError(http.StatusRequestEntityTooLarge, codeBodyTooLarge, "the body is larger than %d bytes", tooLarge.Limit)
	case errors.As(err, &syntax):
		return newError(http.StatusBadRequest, codeMalformedJSON, "malformed JSON at byte %d: %v", syntax.Offset, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return newError(http.StatusBadRequest, codeMalformedJSON, "the body is empty or cut short; a JSON object is required")
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return newError(http.StatusBadRequest, codeMalformedJSON, "the body must be a JSON object, got %s", typeErr.Value)
	}
	if path, msg, ok := validate.DecodeField(data, v, err); ok {
		return fieldError(map[string]string{path: msg})
	}
	return newError(http.StatusBadRequest, codeMalformedJSON, "malformed JSON: %v", err)
}

// validate runs the struct's validate tags and reports each failure under its JSON name.
func (s *Server) validate(v any) error {
	fields, err := validate.Fields(s.validator, v)
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	if fields != nil {
		return fieldError(fields)
	}
	return nil
}
