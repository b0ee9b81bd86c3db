package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
)

// Part is a list inside a capability's spec whose items operators edit one at a time, such
// as a balancer's listeners or server groups. Every part follows one rule:
//
//	GET    /api/v1/{path}/{id}/{part}                 the items
//	POST   /api/v1/{path}/{id}/{part}                 create an item (201; 409 if its name is taken)
//	GET    /api/v1/{path}/{id}/{part}/{name}          the item
//	PUT    /api/v1/{path}/{id}/{part}/{name}          replace the item (200), or create it (201);
//	                                                  its key is the name, filled in when left out
//	DELETE /api/v1/{path}/{id}/{part}/{name}          remove the item (204)
//	GET, PUT  .../{part}/{name}/{child}               a list inside the item, whole: {"items": [...]}
//
// Every answer is the item (the child list), not the resource. Every edit saves a new
// revision of the whole spec, validated like a PUT of the spec, and pushed like any other
// revision; a field error names its path in the body sent ("port", "items[1].group"), or
// its path in the resource ("spec.listeners[0].default_group") when the edit made another
// part of the spec invalid.
type Part struct {
	// Name is the list's key in the spec and its URL segment, e.g. "listeners".
	Name string
	// Key is the item field that names an item, e.g. "name".
	Key string
	// Children are lists inside an item, e.g. a listener's "rules".
	Children []string
}

func (cr *capabilityRoutes) mountParts(api func(string, func(http.ResponseWriter, *http.Request) error)) {
	base := "/api/v1/" + cr.c.Path + "/{id}/"
	for _, p := range cr.c.Parts {
		api("GET "+base+p.Name, cr.partList(p))
		api("POST "+base+p.Name, cr.partEdit(p, "", addItem))
		api("GET "+base+p.Name+"/{name}", cr.partGet(p, ""))
		api("PUT "+base+p.Name+"/{name}", cr.partEdit(p, "", putItem))
		api("DELETE "+base+p.Name+"/{name}", cr.partEdit(p, "", deleteItem))
		for _, child := range p.Children {
			api("GET "+base+p.Name+"/{name}/"+child, cr.partGet(p, child))
			api("PUT "+base+p.Name+"/{name}/"+child, cr.partEdit(p, child, replaceChild(child)))
		}
	}
}

// items returns the spec decoded, with the part's entries.
func items(res store.Resource, p Part) (map[string]any, []any, error) {
	dec := json.NewDecoder(bytes.NewReader(res.Spec))
	dec.UseNumber()
	var spec map[string]any
	if err := dec.Decode(&spec); err != nil {
		return nil, nil, fmt.Errorf("api: stored %s %s is not a JSON object: %w", res.Kind, res.ID, err)
	}
	entries, _ := spec[p.Name].([]any)
	return spec, entries, nil
}

func find(entries []any, p Part, name string) int {
	for i, it := range entries {
		if m, ok := it.(map[string]any); ok && m[p.Key] == name {
			return i
		}
	}
	return -1
}

func (cr *capabilityRoutes) partList(p Part) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		res, err := cr.viewRedacted(r)
		if err != nil {
			return err
		}
		_, entries, err := items(res, p)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, list[any]{append([]any{}, entries...)})
		return nil
	}
}

func (cr *capabilityRoutes) partGet(p Part, child string) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		res, err := cr.viewRedacted(r)
		if err != nil {
			return err
		}
		_, entries, err := items(res, p)
		if err != nil {
			return err
		}
		i := find(entries, p, r.PathValue("name"))
		if i < 0 {
			return fmt.Errorf("%s %q: %w", p.Name, r.PathValue("name"), store.ErrNotFound)
		}
		if child == "" {
			writeJSON(w, http.StatusOK, entries[i])
			return nil
		}
		kids, _ := entries[i].(map[string]any)[child].([]any)
		writeJSON(w, http.StatusOK, list[any]{append([]any{}, kids...)})
		return nil
	}
}

// viewRedacted reads a resource the caller may see, its secrets hidden, for answers.
func (cr *capabilityRoutes) viewRedacted(r *http.Request) (store.Resource, error) {
	res, err := cr.view(r)
	return cr.redact(res), err
}

// view reads a resource the caller may see.
func (cr *capabilityRoutes) view(r *http.Request) (store.Resource, error) {
	var res store.Resource
	err := cr.s.store.View(r.Context(), func(tx store.Reader) (err error) {
		res, err = cr.load(r, tx)
		return err
	})
	return res, err
}

// edit changes the part's entries given the request body and the item named in the path
// (none for a POST). It returns the entries and where the edit is in them: the item's index
// (-1 when it was removed), whether it was created, and the path in the spec of what the body
// holds, by which the body's field errors are named.
type edit func(p Part, entries []any, name string, body any) (out []any, at edited, err error)

type edited struct {
	index   int
	created bool
	body    string
}

func addItem(p Part, entries []any, _ string, body any) ([]any, edited, error) {
	item, ok := body.(map[string]any)
	if !ok {
		return nil, edited{}, newError(http.StatusBadRequest, codeMalformedJSON, "the body must be a JSON object")
	}
	name, _ := item[p.Key].(string)
	if name == "" {
		return nil, edited{}, fieldError(map[string]string{p.Key: "is required"})
	}
	if find(entries, p, name) >= 0 {
		return nil, edited{}, newError(http.StatusConflict, codeConflict, "%s %q already exists", p.Name, name)
	}
	at := len(entries)
	return append(entries, item), edited{index: at, created: true, body: fmt.Sprintf("%s[%d]", p.Name, at)}, nil
}

// putItem replaces the item named in the path, or adds it when there is none.
func putItem(p Part, entries []any, name string, body any) ([]any, edited, error) {
	item, ok := body.(map[string]any)
	if !ok {
		return nil, edited{}, newError(http.StatusBadRequest, codeMalformedJSON, "the body must be a JSON object")
	}
	if got, set := item[p.Key]; set && got != name {
		return nil, edited{}, fieldError(map[string]string{p.Key: fmt.Sprintf("must be %q, the name in the path", name)})
	}
	item[p.Key] = name
	at := edited{index: find(entries, p, name)}
	if at.index < 0 {
		at.index, at.created = len(entries), true
		entries = append(entries, item)
	} else {
		entries[at.index] = item
	}
	at.body = fmt.Sprintf("%s[%d]", p.Name, at.index)
	return entries, at, nil
}

func deleteItem(p Part, entries []any, name string, _ any) ([]any, edited, error) {
	i := find(entries, p, name)
	if i < 0 {
		return nil, edited{}, fmt.Errorf("%s %q: %w", p.Name, name, store.ErrNotFound)
	}
	return append(entries[:i], entries[i+1:]...), edited{index: -1}, nil
}

func replaceChild(child string) edit {
	return func(p Part, entries []any, name string, body any) ([]any, edited, error) {
		in, ok := body.(map[string]any)
		kids, isList := in["items"].([]any)
		if !ok || !isList || len(in) != 1 {
			return nil, edited{}, fieldError(map[string]string{"items": "is required: the whole list of " + child})
		}
		i := find(entries, p, name)
		if i < 0 {
			return nil, edited{}, fmt.Errorf("%s %q: %w", p.Name, name, store.ErrNotFound)
		}
		entries[i].(map[string]any)[child] = kids
		return entries, edited{index: i, body: fmt.Sprintf("%s[%d].%s", p.Name, i, child)}, nil
	}
}

// inBody names the fields of a refused edit by their path in the body, which the spec holds
// at spec.{at}; the body of a child list is {"items": [...]}. Fields elsewhere in the spec
// keep their path in the resource.
func inBody(err error, at, child string) error {
	var ae *apiError
	if !errors.As(err, &ae) || ae.Fields == nil || at == "" {
		return err
	}
	root := ""
	if child != "" {
		root = "items"
	}
	fields := make(map[string]string, len(ae.Fields))
	for k, v := range ae.Fields {
		if rest, ok := strings.CutPrefix(k, "spec."+at); ok && (rest == "" || rest[0] == '.' || rest[0] == '[') {
			k = joinPath(root, rest)
		}
		fields[k] = v
	}
	out := *ae
	out.Fields = fields
	return &out
}

// partEdit applies e to the stored spec and saves the result as a new revision, if the
// capability accepts the whole spec, and answers the item (the child list) as saved.
func (cr *capabilityRoutes) partEdit(p Part, child string, e edit) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := cr.mayChange(r); err != nil {
			return err
		}
		var body any
		if r.Method != http.MethodDelete {
			var raw json.RawMessage
			if err := cr.s.decodeJSON(w, r, &raw); err != nil {
				return err
			}
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			if err := dec.Decode(&body); err != nil {
				return newError(http.StatusBadRequest, codeMalformedJSON, "malformed JSON: %v", err)
			}
		}
		cr.mu.Lock()
		defer cr.mu.Unlock()
		var (
			out store.Resource
			at  edited
		)
		err := cr.s.store.Change(r.Context(), cr.s.actor(r), func(tx store.Tx) error {
			res, err := cr.load(r, tx)
			if err != nil {
				return err
			}
			spec, entries, err := items(res, p)
			if err != nil {
				return err
			}
			if spec[p.Name], at, err = e(p, entries, r.PathValue("name"), body); err != nil {
				return err
			}
			edited, err := json.Marshal(spec)
			if err != nil {
				return fmt.Errorf("api: encode %s %s: %w", res.Kind, res.ID, err)
			}
			if res.Spec, err = cr.keepSecrets(edited, res.Spec); err != nil {
				return inBody(err, at.body, child)
			}
			if res.Name, err = cr.check(res.Spec); err != nil {
				return inBody(err, at.body, child)
			}
			if err := cr.admit(r.Context(), tx, caller(r.Context()), res); err != nil {
				return inBody(err, at.body, child)
			}
			out, err = tx.PutResource(r.Context(), res)
			return err
		})
		if err != nil {
			return err
		}
		if at.index < 0 {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		_, saved, err := items(cr.redact(out), p)
		if err != nil {
			return err
		}
		if at.index >= len(saved) {
			return fmt.Errorf("api: saved %s %s has no %s[%d]", out.Kind, out.ID, p.Name, at.index)
		}
		item, _ := saved[at.index].(map[string]any)
		if child != "" {
			kids, _ := item[child].([]any)
			writeJSON(w, http.StatusOK, list[any]{append([]any{}, kids...)})
			return nil
		}
		if !at.created {
			writeJSON(w, http.StatusOK, item)
			return nil
		}
		where := r.URL.Path
		if r.Method == http.MethodPost {
			name, _ := item[p.Key].(string)
			where += "/" + url.PathEscape(name)
		}
		w.Header().Set("Location", where)
		writeJSON(w, http.StatusCreated, item)
		return nil
	}
}
