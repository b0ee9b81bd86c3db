package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
)

// Part is a named entries inside a capability's spec that operators edit one item at a time,
// such as a balancer's listeners or server groups:
//
//	GET, POST          /api/v1/{path}/{id}/{part}
//	GET, PUT, DELETE   /api/v1/{path}/{id}/{part}/{name}
//	GET, PUT           /api/v1/{path}/{id}/{part}/{name}/{child}   a entries inside the item, whole
//
// Every edit saves a new revision of the whole spec, validated like a PUT of the spec, and
// is pushed like any other revision.
type Part struct {
	// Name is the entries's key in the spec and its URL segment, e.g. "listeners".
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
		api("POST "+base+p.Name, cr.partEdit(p, addItem))
		api("GET "+base+p.Name+"/{name}", cr.partGet(p, ""))
		api("PUT "+base+p.Name+"/{name}", cr.partEdit(p, replaceItem))
		api("DELETE "+base+p.Name+"/{name}", cr.partEdit(p, deleteItem))
		for _, child := range p.Children {
			api("GET "+base+p.Name+"/{name}/"+child, cr.partGet(p, child))
			api("PUT "+base+p.Name+"/{name}/"+child, cr.partEdit(p, replaceChild(child)))
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

// edit changes the part's entries given the request body and the item named in the path.
type edit func(p Part, entries []any, name string, body any) ([]any, error)

func addItem(p Part, entries []any, _ string, body any) ([]any, error) {
	item, ok := body.(map[string]any)
	if !ok {
		return nil, newError(http.StatusBadRequest, codeMalformedJSON, "the body must be a JSON object")
	}
	name, _ := item[p.Key].(string)
	if name == "" {
		return nil, fieldError(map[string]string{p.Key: "is required"})
	}
	if find(entries, p, name) >= 0 {
		return nil, newError(http.StatusConflict, codeConflict, "%s %q already exists", p.Name, name)
	}
	return append(entries, item), nil
}

func replaceItem(p Part, entries []any, name string, body any) ([]any, error) {
	item, ok := body.(map[string]any)
	if !ok {
		return nil, newError(http.StatusBadRequest, codeMalformedJSON, "the body must be a JSON object")
	}
	if got, set := item[p.Key]; set && got != name {
		return nil, fieldError(map[string]string{p.Key: fmt.Sprintf("must be %q, the name in the path", name)})
	}
	item[p.Key] = name
	i := find(entries, p, name)
	if i < 0 {
		return nil, fmt.Errorf("%s %q: %w", p.Name, name, store.ErrNotFound)
	}
	entries[i] = item
	return entries, nil
}

func deleteItem(p Part, entries []any, name string, _ any) ([]any, error) {
	i := find(entries, p, name)
	if i < 0 {
		return nil, fmt.Errorf("%s %q: %w", p.Name, name, store.ErrNotFound)
	}
	return append(entries[:i], entries[i+1:]...), nil
}

func replaceChild(child string) edit {
	return func(p Part, entries []any, name string, body any) ([]any, error) {
		in, ok := body.(map[string]any)
		kids, isList := in["items"].([]any)
		if !ok || !isList || len(in) != 1 {
			return nil, fieldError(map[string]string{"items": "is required: the whole entries of " + child})
		}
		i := find(entries, p, name)
		if i < 0 {
			return nil, fmt.Errorf("%s %q: %w", p.Name, name, store.ErrNotFound)
		}
		entries[i].(map[string]any)[child] = kids
		return entries, nil
	}
}

// partEdit applies e to the stored spec and saves the result as a new revision, if the
// capability accepts the whole spec.
func (cr *capabilityRoutes) partEdit(p Part, e edit) func(http.ResponseWriter, *http.Request) error {
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
		var out store.Resource
		err := cr.s.store.Change(r.Context(), cr.s.actor(r), func(tx store.Tx) error {
			res, err := cr.load(r, tx)
			if err != nil {
				return err
			}
			spec, entries, err := items(res, p)
			if err != nil {
				return err
			}
			if spec[p.Name], err = e(p, entries, r.PathValue("name"), body); err != nil {
				return err
			}
			edited, err := json.Marshal(spec)
			if err != nil {
				return fmt.Errorf("api: encode %s %s: %w", res.Kind, res.ID, err)
			}
			if res.Spec, err = cr.keepSecrets(edited, res.Spec); err != nil {
				return err
			}
			if res.Name, err = cr.check(res.Spec); err != nil {
				return err
			}
			if err := cr.admit(r.Context(), tx, caller(r.Context()), res); err != nil {
				return err
			}
			out, err = tx.PutResource(r.Context(), res)
			return err
		})
		if err != nil {
			return err
		}
		status := http.StatusOK
		if r.Method == http.MethodPost {
			status = http.StatusCreated
		}
		writeJSON(w, status, cr.redact(out))
		return nil
	}
}
