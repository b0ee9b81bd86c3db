package api

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
)

// Format is another representation of a capability's spec, such as a DNS zone file. It is
// served beside the JSON one, and a body in it is saved by the same path as a JSON spec
// (Check, Admit, the audit), so that no rule is skipped:
//
//	GET  /api/v1/{path}/{id}/{name}                          the saved spec in the format
//	PUT  /api/v1/{path}/{id}/{name}                          save a new revision from the body
//	POST /api/v1/{path}/{name}?team_id=...|project_id=...    create a resource from the body
type Format struct {
	// ContentType is the format's media type: answers carry it, and bodies may be sent with
	// it, text/plain or none.
	ContentType string
	// Encode writes a saved spec (secrets hidden) in the format.
	Encode func(spec json.RawMessage) ([]byte, error)
	// Decode reads a body into a spec. old is the saved spec the body replaces, nil when it
	// creates a resource; query holds what the format cannot carry (a zone file's origin).
	// Its errors are the request's: an InvalidSpec (or the package's validation error) or an Invalid is answered as such, any
	// other is the body's, answered under the format's name.
	Decode func(body []byte, old json.RawMessage, query url.Values) (json.RawMessage, error)
}

func (cr *capabilityRoutes) mountFormats(api func(string, func(http.ResponseWriter, *http.Request) error)) {
	base := "/api/v1/" + cr.c.Path
	for name, f := range cr.c.Formats {
		api("GET "+base+"/{id}/"+name, cr.getFormat(f))
		api("PUT "+base+"/{id}/"+name, cr.putFormat(name, f))
		api("POST "+base+"/"+name, cr.createFormat(name, f))
	}
}

func (cr *capabilityRoutes) getFormat(f Format) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		res, err := cr.viewRedacted(r)
		if err != nil {
			return err
		}
		out, err := f.Encode(res.Spec)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", f.ContentType+"; charset=utf-8")
		_, err = w.Write(out)
		return err
	}
}

func (cr *capabilityRoutes) putFormat(name string, f Format) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := cr.mayChange(r); err != nil {
			return err
		}
		old, err := cr.view(r)
		if err != nil {
			return err
		}
		spec, err := cr.decodeFormat(w, r, name, f, old.Spec)
		if err != nil {
			return err
		}
		return cr.save(w, r, http.StatusOK, cr.replaceSpec(r, spec))
	}
}

func (cr *capabilityRoutes) createFormat(name string, f Format) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := cr.mayChange(r); err != nil {
			return err
		}
		q := r.URL.Query()
		in := resourceCreate{TeamID: q.Get("team_id"), ProjectID: q.Get("project_id")}
		var err error
		if in.Spec, err = cr.decodeFormat(w, r, name, f, nil); err != nil {
			return err
		}
		if err := cr.s.validate(&in); err != nil {
			return err
		}
		return cr.save(w, r, http.StatusCreated, cr.newResource(r, in))
	}
}

// decodeFormat reads the body, within the size limit, and decodes it with f.
func (cr *capabilityRoutes) decodeFormat(w http.ResponseWriter, r *http.Request, name string, f Format, old json.RawMessage) (json.RawMessage, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != f.ContentType && mt != "text/plain" {
			return nil, newError(http.StatusUnsupportedMediaType, codeUnsupportedMedia, "Content-Type must be %s, got %q", f.ContentType, ct)
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, cr.s.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, decodeError(err, nil, nil)
		}
		return nil, newError(http.StatusBadRequest, codeBadRequest, "read the body: %v", err)
	}
	spec, err := f.Decode(body, old, r.URL.Query())
	var ae *apiError
	if _, ok := fieldsOf(err); ok || err == nil || errors.As(err, &ae) {
		return spec, asFieldError(err)
	}
	return nil, fieldError(map[string]string{name: err.Error()})
}

// newResource builds the resource a create makes from in, in a team the caller may use.
func (cr *capabilityRoutes) newResource(r *http.Request, in resourceCreate) func(tx store.Tx) (store.Resource, error) {
	return func(tx store.Tx) (store.Resource, error) {
		team, err := ownProject(r, tx, in.TeamID, in.ProjectID)
		if err != nil {
			return store.Resource{}, err
		}
		spec, err := cr.keepSecrets(in.Spec, nil)
		return store.Resource{Kind: cr.c.Kind, ID: NewID(cr.c.IDPrefix), TeamID: team, ProjectID: in.ProjectID, Spec: spec}, err
	}
}

// replaceSpec builds the resource in the path with spec as its new revision.
func (cr *capabilityRoutes) replaceSpec(r *http.Request, spec json.RawMessage) func(tx store.Tx) (store.Resource, error) {
	return func(tx store.Tx) (store.Resource, error) {
		res, err := cr.load(r, tx)
		if err != nil {
			return res, err
		}
		res.Spec, err = cr.keepSecrets(spec, res.Spec)
		return res, err
	}
}
