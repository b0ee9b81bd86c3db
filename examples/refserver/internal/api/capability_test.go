package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// widget stands in for a capability package's config type.
type widget struct {
	Name string `json:"name" validate:"required,max=16"`
	Size int    `json:"size" validate:"min=1"`
}

func checkWidget(spec json.RawMessage) (string, error) {
	var w widget
	dec := json.NewDecoder(bytes.NewReader(spec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return "", err
	}
	fields, err := validate.Fields(validate.New("json"), w)
	if err != nil {
		return "", err
	}
	if fields != nil {
		return "", InvalidSpec(fields)
	}
	return w.Name, nil
}

// recordingPlane remembers what runs, and can refuse a size the way a data plane refuses
// what only it can check (a port in use, say).
type recordingPlane struct {
	mu      sync.Mutex
	running map[string]widget
	refuse  int
}

func (p *recordingPlane) Push(_ context.Context, r store.Resource) error {
	var w widget
	if err := json.Unmarshal(r.Spec, &w); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.Size == p.refuse {
		return InvalidSpec{"size": "refused by the data plane"}
	}
	if p.running == nil {
		p.running = map[string]widget{}
	}
	p.running[r.ID] = w
	return nil
}

func (p *recordingPlane) Remove(_ context.Context, r store.Resource) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.running, r.ID)
	return nil
}

func (p *recordingPlane) Status(_ context.Context, r store.Resource) (any, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, ok := p.running[r.ID]
	if !ok {
		return nil, errors.New("not running")
	}
	return map[string]any{"running": w}, nil
}

func (p *recordingPlane) get(id string) (widget, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, ok := p.running[id]
	return w, ok
}

type growInput struct {
	By int `json:"by" validate:"min=1"`
}

// grow is an action on the running widgets: the data plane changes first, and the specs it
// returns are what the store keeps.
func (p *recordingPlane) grow(_ context.Context, targets []store.Resource, input any) (map[string]json.RawMessage, any, error) {
	by := input.(*growInput).By
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := map[string]json.RawMessage{}
	for _, t := range targets {
		w, ok := p.running[t.ID]
		if !ok {
			continue
		}
		w.Size += by
		p.running[t.ID] = w
		changed[t.ID], _ = json.Marshal(w)
	}
	return changed, map[string]int{"grown": len(changed)}, nil
}

func withWidgets(f *fixture, plane *recordingPlane) {
	s := New(Options{Store: f.store, MaxBodyBytes: 4096, Capabilities: []Capability{{
		Kind: "widget", Path: "widgets", IDPrefix: "wg", Check: checkWidget, Plane: plane,
		Actions: map[string]Action{"grow": {Collection: true, Input: func() any { return &growInput{} }, Do: plane.grow}},
	}}})
	s.SetReady(true)
	f.srv.Config.Handler = s
}

func TestCapabilitySaveThenPush(t *testing.T) {
	f := newFixture(t)
	plane := &recordingPlane{refuse: 13}
	withWidgets(f, plane)
	tok := f.secret[0]

	r := f.do("POST", "/api/v1/widgets", tok, `{"spec":{"name":"门诊","size":1}}`)
	require.Equal(t, 201, r.status, r.raw)
	id := r.body["id"].(string)
	require.Equal(t, f.teams[0].ID, r.body["team_id"])
	require.EqualValues(t, 1, r.body["revision"])
	require.EqualValues(t, 0, r.body["pushed_revision"])
	_, running := plane.get(id)
	require.False(t, running, "saving does not push")

	r = f.do("POST", "/api/v1/widgets/"+id+"/push", tok, "")
	require.Equal(t, 200, r.status, r.raw)
	require.EqualValues(t, 1, r.body["pushed_revision"])
	w, _ := plane.get(id)
	require.Equal(t, 1, w.Size)

	r = f.do("PUT", "/api/v1/widgets/"+id, tok, `{"spec":{"name":"门诊","size":2}}`)
	require.Equal(t, 200, r.status, r.raw)
	require.EqualValues(t, 2, r.body["revision"])
	require.EqualValues(t, 1, r.body["pushed_revision"])
	w, _ = plane.get(id)
	require.Equal(t, 1, w.Size, "the data plane runs revision 1 until revision 2 is pushed")

	r = f.do("POST", "/api/v1/widgets/"+id+"/push", tok, `{"revision":1}`)
	require.Equal(t, 409, r.status, "a push of a stale revision is refused: %s", r.raw)
	r = f.do("POST", "/api/v1/widgets/"+id+"/push", tok, `{"revision":2}`)
	require.Equal(t, 200, r.status, r.raw)
	w, _ = plane.get(id)
	require.Equal(t, 2, w.Size)

	// A spec the data plane refuses is a field error, and nothing is marked pushed.
	require.Equal(t, 200, f.do("PUT", "/api/v1/widgets/"+id, tok, `{"spec":{"name":"门诊","size":13}}`).status)
	r = f.do("POST", "/api/v1/widgets/"+id+"/push", tok, "")
	require.Equal(t, 400, r.status, r.raw)
	require.Equal(t, "refused by the data plane", r.fields()["spec.size"])
	r = f.do("GET", "/api/v1/widgets/"+id, tok, "")
	require.EqualValues(t, 2, r.body["pushed_revision"])
	w, _ = plane.get(id)
	require.Equal(t, 2, w.Size, "the running spec is untouched")

	r = f.do("GET", "/api/v1/widgets/"+id+"/status", tok, "")
	require.Equal(t, 200, r.status, r.raw)
	require.EqualValues(t, 2, r.body["running"].(map[string]any)["size"])

	// After a restart the data plane gets the last pushed spec, not the unpushed edit.
	fresh := &recordingPlane{}
	s := New(Options{Store: f.store, Capabilities: []Capability{{Kind: "widget", Path: "widgets", IDPrefix: "wg", Check: checkWidget, Plane: fresh}}})
	require.NoError(t, s.RestorePlanes(context.Background()))
	w, ok := fresh.get(id)
	require.True(t, ok)
	require.Equal(t, 2, w.Size)

	require.Equal(t, 204, f.do("DELETE", "/api/v1/widgets/"+id, tok, "").status)
	_, running = plane.get(id)
	require.False(t, running, "a deleted resource leaves the data plane")

	audit := f.do("GET", "/api/v1/audit?kind=widget&resource_id="+id, tok, "")
	var actions []string
	for _, it := range audit.body["items"].([]any) {
		actions = append(actions, it.(map[string]any)["action"].(string))
	}
	require.Equal(t, []string{"delete", "update", "push", "update", "push", "create"}, actions, "the refused push left no record")
}

func TestCapabilityBadSpecsChangeNothing(t *testing.T) {
	f := newFixture(t)
	withWidgets(f, &recordingPlane{})
	tok := f.secret[0]
	before := f.snapshot(0)
	for _, c := range []struct {
		body   string
		fields map[string]string
	}{
		{`{"spec":{"name":"","size":0}}`, map[string]string{"spec.name": "is required", "spec.size": "must be at least 1, got 0"}},
		{`{"spec":{"name":"x","size":1,"color":"red"}}`, map[string]string{"spec": `json: unknown field "color"`}},
		{`{"spec":{"name":"x","size":"big"}}`, map[string]string{"spec": "json: cannot unmarshal string into Go struct field widget.size of type int"}},
		{`{}`, map[string]string{"spec": "is required"}},
		{`{"spec":{"name":"x","size":1},"team_id":"` + f.teams[1].ID + `"}`, map[string]string{"team_id": "no such team"}},
	} {
		r := f.do("POST", "/api/v1/widgets", tok, c.body)
		require.Equal(t, 400, r.status, r.raw)
		got := map[string]string{}
		for k, v := range r.fields() {
			got[k] = v.(string)
		}
		require.Equal(t, c.fields, got, c.body)
	}
	require.Equal(t, before, f.snapshot(0))
}

func TestCapabilityTenancy(t *testing.T) {
	f := newFixture(t)
	plane := &recordingPlane{}
	withWidgets(f, plane)
	r := f.do("POST", "/api/v1/widgets", f.secret[1], `{"spec":{"name":"theirs","size":1}}`)
	require.Equal(t, 201, r.status, r.raw)
	theirs := r.body["id"].(string)
	require.Equal(t, 200, f.do("POST", "/api/v1/widgets/"+theirs+"/push", f.secret[1], "").status)
	before := f.snapshot(1)

	mine := f.secret[0]
	require.Empty(t, f.do("GET", "/api/v1/widgets", mine, "").ids())
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/v1/widgets/" + theirs, ""},
		{"PUT", "/api/v1/widgets/" + theirs, `{"spec":{"name":"mine","size":9}}`},
		{"DELETE", "/api/v1/widgets/" + theirs, ""},
		{"POST", "/api/v1/widgets/" + theirs + "/push", ""},
		{"GET", "/api/v1/widgets/" + theirs + "/status", ""},
	} {
		r := f.do(c.method, c.path, mine, c.body)
		require.Equal(t, 404, r.status, "%s %s: %s", c.method, c.path, r.raw)
	}
	require.Equal(t, before, f.snapshot(1))
	w, ok := plane.get(theirs)
	require.True(t, ok)
	require.Equal(t, 1, w.Size)
	require.Len(t, f.do("GET", "/api/v1/widgets", f.admin, "").ids(), 1, "the admin sees every team's")
}

func TestCapabilityActions(t *testing.T) {
	f := newFixture(t)
	plane := &recordingPlane{}
	withWidgets(f, plane)
	var ids []string
	for i, tok := range f.secret {
		r := f.do("POST", "/api/v1/widgets", tok, `{"spec":{"name":"w","size":1}}`)
		require.Equal(t, 201, r.status, r.raw)
		ids = append(ids, r.body["id"].(string))
		require.Equal(t, 200, f.do("POST", "/api/v1/widgets/"+ids[i]+"/push", tok, "").status)
	}

	r := f.do("POST", "/api/v1/widgets/"+ids[0]+"/grow", f.secret[0], `{"by":0}`)
	require.Equal(t, 400, r.status)
	require.Equal(t, "must be at least 1, got 0", r.fields()["by"])
	require.Equal(t, 404, f.do("POST", "/api/v1/widgets/"+ids[1]+"/grow", f.secret[0], `{"by":1}`).status)
	require.Equal(t, 403, f.do("POST", "/api/v1/widgets/grow", f.secret[0], `{"by":1}`).status, "every team's at once is the admin's")

	r = f.do("POST", "/api/v1/widgets/"+ids[0]+"/grow", f.secret[0], `{"by":2}`)
	require.Equal(t, 200, r.status, r.raw)
	require.EqualValues(t, 1, r.body["grown"])
	r = f.do("POST", "/api/v1/widgets/grow", f.admin, `{"by":10}`)
	require.Equal(t, 200, r.status, r.raw)
	require.EqualValues(t, 2, r.body["grown"])

	w0, _ := plane.get(ids[0])
	w1, _ := plane.get(ids[1])
	require.Equal(t, []int{13, 11}, []int{w0.Size, w1.Size})
	r = f.do("GET", "/api/v1/widgets/"+ids[0], f.secret[0], "")
	require.EqualValues(t, 13, r.body["spec"].(map[string]any)["size"], "the store keeps what the action made")
	require.Equal(t, r.body["revision"], r.body["pushed_revision"])

	fresh := &recordingPlane{}
	s := New(Options{Store: f.store, Capabilities: []Capability{{Kind: "widget", Path: "widgets", IDPrefix: "wg", Check: checkWidget, Plane: fresh}}})
	require.NoError(t, s.RestorePlanes(context.Background()))
	w0, _ = fresh.get(ids[0])
	require.Equal(t, 13, w0.Size, "a restart does not undo an action")

	audit := f.do("GET", "/api/v1/audit?kind=widget&resource_id="+ids[0], f.secret[0], "")
	require.Contains(t, audit.raw, `"action":"grow"`)
	require.Contains(t, audit.raw, `"by":10`)
}

func TestCapabilityResourcesBelongToAProject(t *testing.T) {
	f := newFixture(t)
	withWidgets(f, &recordingPlane{})
	r := f.do("POST", "/api/v1/widgets", f.admin, `{"project_id":"`+f.proj[0].ID+`","spec":{"name":"w","size":1}}`)
	require.Equal(t, 201, r.status, r.raw)
	require.Equal(t, f.teams[0].ID, r.body["team_id"], "the team follows from the project")
	require.Equal(t, f.proj[0].ID, r.body["project_id"])

	r = f.do("POST", "/api/v1/widgets", f.secret[0], `{"project_id":"`+f.proj[1].ID+`","spec":{"name":"x","size":1}}`)
	require.Equal(t, "no such project", r.fields()["project_id"], "another team's project is invisible")
	r = f.do("POST", "/api/v1/widgets", f.admin, `{"team_id":"`+f.teams[1].ID+`","project_id":"`+f.proj[0].ID+`","spec":{"name":"x","size":1}}`)
	require.Equal(t, "differs from the project's team", r.fields()["team_id"])

	require.Equal(t, 201, f.do("POST", "/api/v1/widgets", f.secret[0], `{"spec":{"name":"teamwide","size":1}}`).status)
	require.Len(t, f.do("GET", "/api/v1/widgets", f.secret[0], "").ids(), 2)
	require.Len(t, f.do("GET", "/api/v1/widgets?project_id="+f.proj[0].ID, f.secret[0], "").ids(), 1)
	require.Equal(t, 409, f.do("DELETE", "/api/v1/projects/"+f.proj[0].ID, f.secret[0], "").status, "a project with resources is not deleted")
}

// An InvalidSpec's text names every field with its message, sorted, so that a spec refused
// at a restart is logged with what was wrong; a long one is cut short.
func TestInvalidSpecErrorNamesTheFields(t *testing.T) {
	err := InvalidSpec{"source.url": "must be a peer center", "name": "is required"}
	require.Equal(t, "invalid spec: name: is required; source.url: must be a peer center", err.Error())

	many := InvalidSpec{}
	for i := range 100 {
		many[fmt.Sprintf("listeners[%02d].port", i)] = strings.Repeat("must be 1 to 65535 ", 3)
	}
	msg := many.Error()
	require.LessOrEqual(t, len(msg), 600, msg)
	require.True(t, strings.HasPrefix(msg, "invalid spec: listeners[00].port: must be 1 to 65535"), msg)
	require.Contains(t, msg, "more field(s))")
}
