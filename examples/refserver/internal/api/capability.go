package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// Capability plugs one kind of a capability package's configuration (a balancer, a DNS
// zone, a DR group) into the API as a team-owned resource that is saved, then pushed (下发):
//
//	GET    /api/v1/{path}             list
//	POST   /api/v1/{path}             create: {"team_id": "...", "spec": {...}}
//	GET    /api/v1/{path}/{id}        read, with the revision saved and the one pushed
//	PUT    /api/v1/{path}/{id}        save a new revision: {"spec": {...}}
//	DELETE /api/v1/{path}/{id}        remove from the data plane, then delete
//	POST   /api/v1/{path}/{id}/push   apply the current revision to the data plane
//	GET    /api/v1/{path}/{id}/status the data plane's view of it
//
// The server never reaches into a data-plane object except through Plane: the spec goes in,
// status comes out. That keeps the seam where a later agent mode receives pushes over the
// network instead.
type Capability struct {
	// Kind names the resource in the store and the audit log, e.g. "balancer".
	Kind string
	// Path is the collection's URL segment, e.g. "balancers".
	Path string
	// IDPrefix starts new resource IDs, e.g. "lb".
	IDPrefix string
	// Check decodes spec strictly (no unknown fields) with the capability package's own
	// types and validation, and returns the resource's name. Invalid specs return an
	// InvalidSpec or the package's validation error, keyed by field path inside the spec.
	Check func(spec json.RawMessage) (name string, err error)
	// Plane runs pushed specs. Nil means the capability stores configuration only.
	Plane Plane
	// Actions are operations beyond save and push, each served at
	// POST /api/v1/{path}/{id}/{name} on one resource and, for the admin and actions that
	// say so, at POST /api/v1/{path}/{name} on every resource of the kind at once.
	Actions map[string]Action
	// Parts are lists inside the spec that are edited one item at a time.
	Parts []Part
	// Formats are other representations of the spec, by the name of their URL segment
	// (a zone's "zonefile"), read and saved beside the JSON one.
	Formats map[string]Format
	// Secrets are the paths of the spec's secret fields, such as "a.password" or
	// "items[].token" (see store.DeclareSecrets): the store seals them at rest and hides them
	// in the audit log, answers show them as store.Hidden, and a spec sent back with
	// store.Hidden keeps the stored secret.
	Secrets []string
	// AdminOnly lets only the platform admin create, change, push or delete the kind (for a
	// team it creates them with team_id); teams read theirs. For resources that reach the
	// server's own host, such as deploy nodes.
	AdminOnly bool
	// Admit, when set, decides whether caller may have res as it is, given the rest of the
	// store as tx reads it: other teams' resources (a zone inside another team's zone) and
	// the admin's grants (where a balancer may listen). It runs inside the transaction that
	// saves res, so that no concurrent save slips past it, and again before each push, as a
	// grant may have been narrowed since the save. A refusal is an InvalidSpec (or an API
	// error); it must not name other teams' resources.
	Admit func(ctx context.Context, tx store.Reader, caller store.Token, res store.Resource) error
}

// admit runs the capability's Admit, if any, with field errors keyed as the API reports them.
func (cr *capabilityRoutes) admit(ctx context.Context, tx store.Reader, caller store.Token, res store.Resource) error {
	if cr.c.Admit == nil {
		return nil
	}
	return asFieldError(cr.c.Admit(ctx, tx, caller, res))
}

// mayChange refuses a change of an admin-only kind from a team.
func (cr *capabilityRoutes) mayChange(r *http.Request) error {
	if !cr.c.AdminOnly {
		return nil
	}
	return adminOnly(r, "change "+cr.c.Kind+" resources")
}

// Action is an operation on the data plane, such as a DNS switch, whose effect the store
// must remember: the specs it returns are saved as new revisions, already pushed, and
// audited under the action's name, so a restart restores the state after the action.
type Action struct {
	// Collection also serves the action on every resource of the kind at once, to the admin.
	Collection bool
	// Input returns a pointer to the action's request body type (JSON, validated).
	Input func() any
	// Do runs the action on targets with the decoded input. It returns the new spec of every
	// resource it changed, and a result for the caller. A refused input is an Invalid, its
	// fields named by their path in the input; an InvalidSpec names fields of a target's
	// spec, answered as spec.{path}.
	Do func(ctx context.Context, targets []store.Resource, input any) (changed map[string]json.RawMessage, result any, err error)
}

// Plane is a capability's data plane as the API sees it. Calls for one capability are
// serialized by the API.
type Plane interface {
	// Push applies r.Spec, replacing what runs for r.ID. A rejected spec (InvalidSpec)
	// leaves the running one untouched.
	Push(ctx context.Context, r store.Resource) error
	// Remove stops whatever runs for r.ID; removing what does not run is not an error. It
	// runs inside the store's change that deletes r: store writes made with ctx join it.
	Remove(ctx context.Context, r store.Resource) error
	// Status reports the data plane's state of r.ID as JSON-encodable data.
	Status(ctx context.Context, r store.Resource) (any, error)
}

// InvalidSpec is a spec's field errors, keyed by path inside the spec ("listeners[0].port").
type InvalidSpec map[string]string

// invalidSpecMax bounds an InvalidSpec's text, which may be logged (a spec refused at a
// restart) and whose messages may quote what a team sent.
const invalidSpecMax = 512

// Error names each field and what is wrong with it, sorted by field; past invalidSpecMax
// characters it says how many more fields there are.
func (e InvalidSpec) Error() string {
	var b strings.Builder
	b.WriteString("invalid spec: ")
	keys := slices.Sorted(maps.Keys(e))
	for i, k := range keys {
		part := k + ": " + e[k]
		if i > 0 {
			part = "; " + part
		}
		if b.Len()+len(part) > invalidSpecMax {
			if i == 0 {
				// The first field is named even when its message is too long.
				b.WriteString(strings.ToValidUTF8(part[:invalidSpecMax-b.Len()], "") + "…")
				i++
			}
			if i < len(keys) {
				fmt.Fprintf(&b, " (and %d more field(s))", len(keys)-i)
			}
			break
		}
		b.WriteString(part)
	}
	return b.String()
}

// fieldsOf returns the field errors err holds, keyed by their path in what was refused: an
// InvalidSpec, or a capability package's validation error (*validate.List), as it is or
// wrapped, so that a plane returns the package's error without converting it.
func fieldsOf(err error) (map[string]string, bool) {
	var inv InvalidSpec
	if errors.As(err, &inv) {
		return inv, true
	}
	var list *validate.List
	if errors.As(err, &list) {
		return list.Fields(), true
	}
	return nil, false
}

// asFieldError names the fields of a refused spec (see fieldsOf) by their path in the
// resource ("spec.port", "spec" for the spec itself) for the error envelope.
func asFieldError(err error) error {
	inv, ok := fieldsOf(err)
	if !ok {
		return err
	}
	fields := make(map[string]string, len(inv))
	for k, v := range inv {
		fields[joinPath("spec", k)] = v
	}
	return fieldError(fields)
}

// joinPath is the JSON path of rest inside the value at base: "spec" and "port" make
// "spec.port", "items" and "[1].group" make "items[1].group", "" and ".port" make "port".
func joinPath(base, rest string) string {
	switch {
	case base == "":
		return strings.TrimPrefix(rest, ".")
	case rest == "" || rest[0] == '[' || rest[0] == '.':
		return base + rest
	default:
		return base + "." + rest
	}
}

type resourceCreate struct {
	TeamID string `json:"team_id" validate:"max=64"`
	// ProjectID places the resource in one of the team's projects; the team follows from it.
	ProjectID string          `json:"project_id" validate:"max=64"`
	Spec      json.RawMessage `json:"spec" validate:"required"`
}

type resourceUpdate struct {
	Spec json.RawMessage `json:"spec" validate:"required"`
}

type pushRequest struct {
	// Revision, when set, pushes only if it is still the current revision.
	Revision int64 `json:"revision" validate:"min=0"`
}

// capabilityRoutes serves one capability; mu serializes its changes and pushes so that the
// revision marked pushed is the revision the data plane runs.
type capabilityRoutes struct {
	s  *Server
	c  Capability
	mu sync.Mutex
}

func (s *Server) mount(api func(string, func(http.ResponseWriter, *http.Request) error), c Capability) {
	cr := &capabilityRoutes{s: s, c: c}
	base := "/api/v1/" + c.Path
	api("GET "+base, cr.list)
	api("POST "+base, cr.create)
	api("GET "+base+"/{id}", cr.get)
	api("PUT "+base+"/{id}", cr.update)
	api("DELETE "+base+"/{id}", cr.remove)
	api("POST "+base+"/{id}/push", cr.push)
	api("GET "+base+"/{id}/status", cr.status)
	for name, a := range c.Actions {
		api("POST "+base+"/{id}/"+name, cr.action(name, a, false))
		if a.Collection {
			api("POST "+base+"/"+name, cr.action(name, a, true))
		}
	}
	cr.mountParts(api)
	cr.mountFormats(api)
	s.capabilities = append(s.capabilities, cr)
}

// action serves one Action on the resource in the path or, with all, on every resource.
func (cr *capabilityRoutes) action(name string, a Action, all bool) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := cr.mayChange(r); err != nil {
			return err
		}
		if all {
			if err := adminOnly(r, name+" every "+cr.c.Kind); err != nil {
				return err
			}
		}
		in := a.Input()
		// An action without parameters may be posted without a body.
		if r.ContentLength != 0 {
			if err := cr.s.decode(w, r, in); err != nil {
				return err
			}
		} else if err := cr.s.validate(in); err != nil {
			return err
		}
		cr.mu.Lock()
		defer cr.mu.Unlock()
		var targets []store.Resource
		err := cr.s.store.View(r.Context(), func(tx store.Reader) error {
			if all {
				var err error
				targets, err = tx.Resources(r.Context(), cr.c.Kind, "", "")
				return err
			}
			res, err := cr.load(r, tx)
			targets = []store.Resource{res}
			return err
		})
		if err != nil {
			return err
		}
		// Outside the write transaction, as for a push.
		changed, result, err := a.Do(r.Context(), targets, in)
		if err != nil {
			return asFieldError(err)
		}
		detail := map[string]any{"input": in, "result": result}
		err = cr.s.store.Change(r.Context(), cr.s.actor(r), func(tx store.Tx) error {
			for _, res := range targets {
				if err := tx.Record(r.Context(), name, cr.c.Kind, res.ID, res.TeamID, detail); err != nil {
					return err
				}
				spec, ok := changed[res.ID]
				if !ok {
					continue
				}
				res.Spec = spec
				saved, err := tx.PutResource(r.Context(), res)
				if err != nil {
					return err
				}
				if err := tx.MarkPushed(r.Context(), cr.c.Kind, res.ID, saved.Revision); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, result)
		return nil
	}
}

func (cr *capabilityRoutes) check(spec json.RawMessage) (string, error) {
	name, err := cr.c.Check(spec)
	if err == nil {
		return name, nil
	}
	if _, ok := fieldsOf(err); ok {
		return "", asFieldError(err)
	}
	return "", fieldError(map[string]string{"spec": err.Error()})
}

// load reads a resource the caller may see.
func (cr *capabilityRoutes) load(r *http.Request, tx store.Reader) (store.Resource, error) {
	res, err := tx.Resource(r.Context(), cr.c.Kind, r.PathValue("id"))
	if err != nil {
		return res, err
	}
	return res, visible(r, cr.c.Kind, res.TeamID)
}

func (cr *capabilityRoutes) list(w http.ResponseWriter, r *http.Request) error {
	var out []store.Resource
	err := cr.s.store.View(r.Context(), func(tx store.Reader) (err error) {
		out, err = tx.Resources(r.Context(), cr.c.Kind, scope(r), r.URL.Query().Get("project_id"))
		return err
	})
	if err != nil {
		return err
	}
	for i := range out {
		out[i] = cr.redact(out[i])
	}
	writeJSON(w, http.StatusOK, list[store.Resource]{out})
	return nil
}

// redact hides a resource's secrets for an answer.
func (cr *capabilityRoutes) redact(res store.Resource) store.Resource {
	if len(cr.c.Secrets) > 0 {
		res.Spec = store.Redact(res.Spec, cr.c.Secrets)
		if res.PushedSpec != nil {
			res.PushedSpec = store.Redact(res.PushedSpec, cr.c.Secrets)
		}
	}
	return res
}

// keepSecrets puts the stored secrets of old back where spec holds store.Hidden (a spec
// read, redacted, and sent back), and refuses store.Hidden where old has none, as in
// every create (old nil).
func (cr *capabilityRoutes) keepSecrets(spec, old json.RawMessage) (json.RawMessage, error) {
	out, missing, err := store.KeepHidden(spec, old, cr.c.Secrets)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		fields := map[string]string{}
		for _, at := range missing {
			fields["spec."+at] = store.Hidden + " keeps a stored secret, and none is stored here: send the secret itself"
		}
		return nil, fieldError(fields)
	}
	return out, nil
}

// DeclareSecrets declares each capability's secret fields to the store, which seals what
// it still holds of them in plain text; the server calls it before it serves.
func (s *Server) DeclareSecrets(ctx context.Context) error {
	for _, cr := range s.capabilities {
		if len(cr.c.Secrets) > 0 {
			if err := s.store.DeclareSecrets(ctx, cr.c.Kind, cr.c.Secrets); err != nil {
				return err
			}
		}
	}
	return nil
}

func (cr *capabilityRoutes) get(w http.ResponseWriter, r *http.Request) error {
	out, err := cr.viewRedacted(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (cr *capabilityRoutes) create(w http.ResponseWriter, r *http.Request) error {
	if err := cr.mayChange(r); err != nil {
		return err
	}
	var in resourceCreate
	if err := cr.s.decode(w, r, &in); err != nil {
		return err
	}
	return cr.save(w, r, http.StatusCreated, cr.newResource(r, in))
}

func (cr *capabilityRoutes) update(w http.ResponseWriter, r *http.Request) error {
	if err := cr.mayChange(r); err != nil {
		return err
	}
	var in resourceUpdate
	if err := cr.s.decode(w, r, &in); err != nil {
		return err
	}
	return cr.save(w, r, http.StatusOK, cr.replaceSpec(r, in.Spec))
}

// save stores the resource that resource builds (from the spec sent, the stored secrets put
// back where it says store.Hidden) as a new revision, once the capability's rules pass it, and
// answers it. The rules see the secrets themselves: a TLS key must load.
func (cr *capabilityRoutes) save(w http.ResponseWriter, r *http.Request, status int,
	resource func(tx store.Tx) (store.Resource, error)) error {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	var out store.Resource
	err := cr.s.store.Change(r.Context(), cr.s.actor(r), func(tx store.Tx) error {
		res, err := resource(tx)
		if err != nil {
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
	writeJSON(w, status, cr.redact(out))
	return nil
}

func (cr *capabilityRoutes) remove(w http.ResponseWriter, r *http.Request) error {
	if err := cr.mayChange(r); err != nil {
		return err
	}
	cr.mu.Lock()
	defer cr.mu.Unlock()
	err := cr.s.store.Change(r.Context(), cr.s.actor(r), func(tx store.Tx) error {
		res, err := cr.load(r, tx)
		if err != nil {
			return err
		}
		return cr.removeInTx(r.Context(), tx, res)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// removeInTx deletes res and removes it from the data plane inside the transaction: if that
// fails, the resource stays, and the operator can retry. The plane's own store writes (a
// task forgetting its state) join the transaction.
func (cr *capabilityRoutes) removeInTx(ctx context.Context, tx store.Tx, res store.Resource) error {
	if err := tx.DeleteResource(ctx, cr.c.Kind, res.ID); err != nil {
		return err
	}
	if cr.c.Plane != nil && res.PushedRevision > 0 {
		if err := cr.c.Plane.Remove(tx.Context(ctx), res); err != nil {
			return fmt.Errorf("api: remove %s %s from the data plane: %w", cr.c.Kind, res.ID, err)
		}
	}
	return nil
}

func (cr *capabilityRoutes) push(w http.ResponseWriter, r *http.Request) error {
	if err := cr.mayChange(r); err != nil {
		return err
	}
	if cr.c.Plane == nil {
		return newError(http.StatusConflict, codeConflict, "%s has no data plane in this server; nothing to push to", cr.c.Kind)
	}
	var in pushRequest
	if r.ContentLength != 0 {
		if err := cr.s.decode(w, r, &in); err != nil {
			return err
		}
	}
	// The data plane is called outside the store's write transaction: it may write to the
	// store itself (a DR group records its transitions). cr.mu keeps the resource still.
	cr.mu.Lock()
	defer cr.mu.Unlock()
	var res store.Resource
	err := cr.s.store.View(r.Context(), func(tx store.Reader) (err error) {
		if res, err = cr.load(r, tx); err != nil {
			return err
		}
		return cr.admit(r.Context(), tx, caller(r.Context()), res)
	})
	if err != nil {
		return err
	}
	if in.Revision != 0 && in.Revision != res.Revision {
		return newError(http.StatusConflict, codeConflict, "revision %d was asked for but %d is current", in.Revision, res.Revision)
	}
	out, err := cr.pushLocked(r.Context(), cr.s.actor(r), res)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, cr.redact(out))
	return nil
}

// pushLocked pushes res to the data plane and marks its revision pushed; cr.mu is held.
func (cr *capabilityRoutes) pushLocked(ctx context.Context, actor store.Actor, res store.Resource) (store.Resource, error) {
	if err := cr.c.Plane.Push(ctx, res); err != nil {
		return store.Resource{}, asFieldError(err)
	}
	var out store.Resource
	err := cr.s.store.Change(ctx, actor, func(tx store.Tx) error {
		if err := tx.MarkPushed(ctx, cr.c.Kind, res.ID, res.Revision); err != nil {
			return err
		}
		var err error
		out, err = tx.Resource(ctx, cr.c.Kind, res.ID)
		return err
	})
	return out, err
}

// Publish saves spec as the resource of kind that it names in a project — a new resource
// in the project's team when the project has none of that name — and pushes it, as a save
// and a push through the API would: checked by the capability's rules, serialized with its
// API changes, audited as actor's. It is how a server applies a change it receives from
// elsewhere, such as the other center's app configuration. Unlike a save then a push, it is
// one step: the data plane takes the spec first, then one transaction saves it and marks it
// pushed, so that a failure (or a stop) in between leaves the old spec saved and running,
// and the caller's retry finds the change not yet made.
func (s *Server) Publish(ctx context.Context, actor store.Actor, kind, projectID string, spec json.RawMessage) (store.Resource, error) {
	cr, err := s.capability(kind)
	if err != nil {
		return store.Resource{}, err
	}
	name, err := cr.check(spec)
	if err != nil {
		return store.Resource{}, err
	}
	cr.mu.Lock()
	defer cr.mu.Unlock()
	var res store.Resource
	err = s.store.View(ctx, func(tx store.Reader) error {
		var found bool
		res, found, err = byName(ctx, tx, kind, projectID, name)
		if err != nil {
			return err
		}
		if !found {
			p, err := tx.Project(ctx, projectID)
			if err != nil {
				return err
			}
			res = store.Resource{Kind: kind, ID: NewID(cr.c.IDPrefix), TeamID: p.TeamID, ProjectID: projectID, Name: name}
		}
		res.Spec = spec
		return cr.admit(ctx, tx, store.Token{ID: actor.TokenID, TeamID: actor.TeamID}, res)
	})
	if err != nil {
		return store.Resource{}, err
	}
	if cr.c.Plane != nil {
		if err := cr.c.Plane.Push(ctx, res); err != nil {
			return store.Resource{}, asFieldError(err)
		}
	}
	var out store.Resource
	err = s.store.Change(ctx, actor, func(tx store.Tx) error {
		saved, err := tx.PutResource(ctx, res)
		if err != nil || cr.c.Plane == nil {
			out = saved
			return err
		}
		if err := tx.MarkPushed(ctx, kind, saved.ID, saved.Revision); err != nil {
			return err
		}
		out, err = tx.Resource(ctx, kind, saved.ID)
		return err
	})
	return out, err
}

// Withdraw deletes the resource of kind named name in a project, as a DELETE through the
// API would; there being none is not an error.
func (s *Server) Withdraw(ctx context.Context, actor store.Actor, kind, projectID, name string) error {
	cr, err := s.capability(kind)
	if err != nil {
		return err
	}
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return s.store.Change(ctx, actor, func(tx store.Tx) error {
		res, found, err := byName(ctx, tx, kind, projectID, name)
		if err != nil || !found {
			return err
		}
		return cr.removeInTx(ctx, tx, res)
	})
}

// Find returns the resource of kind named name in a project.
func (s *Server) Find(ctx context.Context, kind, projectID, name string) (res store.Resource, found bool, err error) {
	err = s.store.View(ctx, func(tx store.Reader) error {
		res, found, err = byName(ctx, tx, kind, projectID, name)
		return err
	})
	return res, found, err
}

func byName(ctx context.Context, tx store.Reader, kind, projectID, name string) (store.Resource, bool, error) {
	all, err := tx.Resources(ctx, kind, "", projectID)
	if err != nil {
		return store.Resource{}, false, err
	}
	for _, r := range all {
		if r.Name == name {
			return r, true, nil
		}
	}
	return store.Resource{}, false, nil
}

func (s *Server) capability(kind string) (*capabilityRoutes, error) {
	for _, cr := range s.capabilities {
		if cr.c.Kind == kind {
			return cr, nil
		}
	}
	return nil, fmt.Errorf("api: no capability of kind %q", kind)
}

func (cr *capabilityRoutes) status(w http.ResponseWriter, r *http.Request) error {
	if cr.c.Plane == nil {
		return newError(http.StatusConflict, codeConflict, "%s has no data plane in this server", cr.c.Kind)
	}
	var res store.Resource
	err := cr.s.store.View(r.Context(), func(tx store.Reader) (err error) {
		res, err = cr.load(r, tx)
		return err
	})
	if err != nil {
		return err
	}
	st, err := cr.c.Plane.Status(r.Context(), res)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// RestorePlanes applies again, after a restart, the stored settings and every resource's last
// pushed spec, so the data plane runs what it ran before. Errors are collected; one bad
// resource does not stop the rest.
func (s *Server) RestorePlanes(ctx context.Context) error {
	var errs []error
	for _, sr := range s.settings {
		if err := sr.restore(ctx); err != nil {
			errs = append(errs, fmt.Errorf("api: restore %s: %w", sr.st.Path, err))
		}
	}
	for _, cr := range s.capabilities {
		if cr.c.Plane == nil {
			continue
		}
		var all []store.Resource
		err := s.store.View(ctx, func(tx store.Reader) (err error) {
			all, err = tx.Resources(ctx, cr.c.Kind, "", "")
			return err
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, res := range all {
			if res.PushedRevision == 0 {
				continue
			}
			res.Spec, res.Revision = res.PushedSpec, res.PushedRevision
			if err := cr.c.Plane.Push(ctx, res); err != nil {
				if fields, ok := fieldsOf(err); ok {
					// InvalidSpec's text is bounded, for the log; a package's is not.
					err = InvalidSpec(fields)
				}
				errs = append(errs, fmt.Errorf("api: restore %s %s revision %d: %w", cr.c.Kind, res.ID, res.Revision, err))
			}
		}
	}
	return errors.Join(errs...)
}
