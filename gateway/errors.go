package gateway

import (
	"errors"

	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// Sentinel errors. Errors returned by the package wrap one of these and
// name the thing that failed.
var (
	// ErrInvalidConfig is wrapped by every *ValidationError.
	ErrInvalidConfig = errors.New("gateway: invalid config")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("gateway: closed")
	// ErrBadAuthorization is wrapped by ParseAuthorization's errors: the
	// Authorization header is missing, not ours, or malformed.
	ErrBadAuthorization = errors.New("gateway: bad Authorization header")
	// ErrBadQuery is wrapped when a query cannot be canonicalised (a bad
	// percent escape).
	ErrBadQuery = errors.New("gateway: bad query")
	// ErrBadStatsQuery is returned by Stats for a query it cannot answer.
	ErrBadStatsQuery = errors.New("gateway: bad statistics query")
)

// Code is the stable, machine-readable reason of a refusal. It is the
// "code" of the JSON error body; each code has one HTTP status.
type Code string

// Refusal codes.
const (
	// CodeSignatureInvalid: no or malformed Authorization, unknown AppKey,
	// or a signature that no active secret of the consumer produces. 401.
	CodeSignatureInvalid Code = "signature_invalid"
	// CodeTimestampExpired: the signed timestamp is outside the allowed
	// clock skew (default ±5 min). 401.
	CodeTimestampExpired Code = "timestamp_expired"
	// CodeNonceReplayed: the nonce was used before by the same AppKey
	// within the window. 401.
	CodeNonceReplayed Code = "nonce_replayed"
	// CodeIPDenied: the client IP is on a deny list or off an allow list
	// (global, API or consumer). 403.
	CodeIPDenied Code = "ip_denied"
	// CodeNotAuthorized: the consumer is disabled or has no grant for the API. 403.
	CodeNotAuthorized Code = "not_authorized"
	// CodeRateLimited: a rate limit (consumer, API or consumer × API) is
	// exhausted; Retry-After says when to try again. 429.
	CodeRateLimited Code = "rate_limited"
	// CodeCircuitOpen: the API's upstream failed and its circuit is open;
	// the gateway answers at once without calling it. 503.
	CodeCircuitOpen Code = "circuit_open"
	// CodeNoSuchAPI: no API matches the method and path. 404.
	CodeNoSuchAPI Code = "no_such_api"
	// CodeUpstreamTimeout: the upstream did not answer within the API's timeout. 504.
	CodeUpstreamTimeout Code = "upstream_timeout"
	// CodeUpstreamError: the upstream could not be reached or failed
	// before answering. 502.
	CodeUpstreamError Code = "upstream_error"
	// CodeBodyTooLarge: the body is larger than the API's limit. 413.
	CodeBodyTooLarge Code = "body_too_large"
	// CodeBadRequest: the body could not be read. 400.
	CodeBadRequest Code = "bad_request"
	// CodeUnavailable: the gateway cannot decide (nonce store down). 503.
	CodeUnavailable Code = "unavailable"
)

// Codes lists every refusal code, for documentation and metrics.
var Codes = []Code{
	CodeSignatureInvalid, CodeTimestampExpired, CodeNonceReplayed, CodeIPDenied, CodeNotAuthorized,
	CodeRateLimited, CodeCircuitOpen, CodeNoSuchAPI, CodeUpstreamTimeout, CodeUpstreamError,
	CodeBodyTooLarge, CodeBadRequest, CodeUnavailable,
}

// Status is the HTTP status the gateway answers the code with.
func (c Code) Status() int {
	switch c {
	case CodeSignatureInvalid, CodeTimestampExpired, CodeNonceReplayed:
		return 401
	case CodeIPDenied, CodeNotAuthorized:
		return 403
	case CodeRateLimited:
		return 429
	case CodeCircuitOpen, CodeUnavailable:
		return 503
	case CodeNoSuchAPI:
		return 404
	case CodeUpstreamTimeout:
		return 504
	case CodeUpstreamError:
		return 502
	case CodeBodyTooLarge:
		return 413
	}
	return 400
}

// ErrorBody is the JSON body of every refusal:
//
//	{"error":{"code":"rate_limited","message":"rate limit of consumer \"h1\" exceeded","request_id":"5f1c0e2a9b3d4c11-42"}}
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the content of ErrorBody.
type ErrorDetail struct {
	Code      Code   `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// FieldError is one rejected field of a config.
type FieldError = validate.FieldError

// ValidationError lists every field error of a rejected config, sorted by field. It wraps
// ErrInvalidConfig. A REST API can answer with Fields() as {"error":{"fields":{...}}}.
type ValidationError = validate.List
