package planes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/shuanghuo/shuanghuo/dnsctl"
	"github.com/shuanghuo/shuanghuo/dr"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
)

// Zones serves zone resources from this center's dnsctl server, and switches their
// per-center record sets from one center to another.
type Zones struct {
	srv *dnsctl.Server
	st  store.Store

	mu    sync.Mutex
	owner map[string]string // origin → the resource that serves it
}

// NewZones returns the zone plane of srv, a started dnsctl server; st keeps what a DR plan's
// switch does to the zones.
func NewZones(srv *dnsctl.Server, st store.Store) *Zones {
	return &Zones{srv: srv, st: st, owner: map[string]string{}}
}

// SwitchDNS implements dr.DNSSwitcher for the switch-dns step of DR plans: every zone moves to
// center to in one atomic step, and the zones as then served are saved, already pushed, so
// that a restart keeps the switch.
func (p *Zones) SwitchDNS(ctx context.Context, to dr.Side) error {
	if _, err := p.srv.Switch(ctx, dnsctl.Scope{}, string(to)); err != nil && !errors.Is(err, dnsctl.ErrRecordSetNotFound) {
		return fmt.Errorf("planes: switch DNS to %s: %w", to, err)
	}
	p.mu.Lock()
	owned := maps.Clone(p.owner)
	p.mu.Unlock()
	specs := map[string]json.RawMessage{}
	for origin, id := range owned {
		spec, err := p.served(origin)
		if err != nil {
			return err
		}
		specs[id] = spec
	}
	return keepPushed(ctx, p.st, "zone", specs, "switch", map[string]any{"to": to, "by": "dr plan"})
}

// Capability mounts zones under /api/v1/zones, with two actions on the running zone:
// POST /api/v1/zones/{id}/switch moves one zone (or one record set of it) to a center, and
// the admin's POST /api/v1/zones/switch moves every zone at once, atomically;
// POST /api/v1/zones/{id}/changes adds, updates and deletes record sets in one atomic batch.
func (p *Zones) Capability() api.Capability {
	return api.Capability{
		Kind: "zone", Path: "zones", IDPrefix: "zn", Check: checkZone, Plane: p, Admit: admitZone,
		Actions: map[string]api.Action{
			"switch":  {Collection: true, Input: func() any { return &SwitchInput{} }, Do: p.switchCenter},
			"changes": {Input: func() any { return &ChangesInput{} }, Do: p.applyChanges},
		},
		Formats: map[string]api.Format{
			"zonefile": {ContentType: "text/dns", Encode: p.encodeZoneFile, Decode: decodeZoneFile},
		},
	}
}

// encodeZoneFile writes a saved zone as an RFC 1035 zone file, as this center would serve it.
func (p *Zones) encodeZoneFile(spec json.RawMessage) ([]byte, error) {
	var z dnsctl.Zone
	if err := decodeStrict(spec, &z); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := p.srv.WriteZoneFile(&b, z); err != nil {
		return nil, fmt.Errorf("planes: zone %s as a zone file: %w", z.Origin, err)
	}
	return b.Bytes(), nil
}

// decodeZoneFile reads an RFC 1035 zone file into a zone spec. Its origin is the saved
// zone's when it replaces one; for a new zone, ?origin= or the file's first $ORIGIN.
func decodeZoneFile(body []byte, old json.RawMessage, query url.Values) (json.RawMessage, error) {
	var origin string
	if old != nil {
		var z dnsctl.Zone
		if err := json.Unmarshal(old, &z); err != nil {
			return nil, fmt.Errorf("planes: the saved zone: %w", err)
		}
		origin = z.Origin
	} else if origin = query.Get("origin"); origin == "" {
		origin = fileOrigin(body)
	}
	if origin == "" {
		return nil, api.Invalid(map[string]string{"origin": "the zone file has no $ORIGIN: give the zone's origin as ?origin="})
	}
	z, err := dnsctl.ParseZoneFile(origin, bytes.NewReader(body))
	if errors.Is(err, dnsctl.ErrZoneFile) {
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	spec, err := json.Marshal(z)
	if err != nil {
		return nil, fmt.Errorf("planes: encode zone %s: %w", origin, err)
	}
	return spec, nil
}

// fileOrigin is the name of a zone file's first $ORIGIN directive, or "".
func fileOrigin(body []byte) string {
	for line := range strings.Lines(string(body)) {
		f := strings.Fields(line)
		if len(f) >= 2 && strings.EqualFold(f[0], "$ORIGIN") {
			return f[1]
		}
	}
	return ""
}

// SwitchInput is the body of a switch.
type SwitchInput struct {
	// Name and Type pick one record set of the zone; empty switches the whole zone.
	Name string `json:"name" validate:"required_with=Type,max=253"`
	Type string `json:"type" validate:"required_with=Name,omitempty,oneof=A AAAA CNAME SRV TXT MX PTR"`
	// To is the center to serve, or "*" for each client its own center (active-active).
	To string `json:"to" validate:"required,max=32"`
}

// ViewsInput is the DNS views (split horizon): which client networks get which center's
// answers from record sets active in every center.
type ViewsInput struct {
	Views []dnsctl.View `json:"views" validate:"max=100"`
}

// ViewsSetting serves the views at /api/v1/dns/views.
func (p *Zones) ViewsSetting() api.Setting {
	return api.Setting{
		Path:  "dns/views",
		Input: func() any { return &ViewsInput{} },
		Apply: func(ctx context.Context, v any) error {
			return p.srv.SetViews(ctx, v.(*ViewsInput).Views)
		},
		Current: func() any { return ViewsInput{Views: append([]dnsctl.View{}, p.srv.Views()...)} },
	}
}

// ChangesInput is a batch of record-set changes, applied all or none.
type ChangesInput struct {
	Changes []dnsctl.Change `json:"changes" validate:"required,min=1,max=1000"`
}

// ChangesResult is the zone's serial after a batch.
type ChangesResult struct {
	Serial uint32 `json:"serial"`
}

// SwitchResult says what a switch moved.
type SwitchResult struct {
	To         string   `json:"to"`
	RecordSets int      `json:"record_sets"`
	Zones      []string `json:"zones"`
}

func checkZone(spec json.RawMessage) (string, error) {
	var z dnsctl.Zone
	if err := decodeStrict(spec, &z); err != nil {
		return "", err
	}
	if err := z.Validate(); err != nil {
		return "", err
	}
	return canonical(z.Origin), nil
}

// admitZone keeps a team's zone clear of other teams' zones: a team may not serve another
// team's origin, a zone inside it (db.sub.za would answer for the owner of za) or one above it.
// Delegation is the admin's: the admin may save and push such a zone for a team, and a
// team's grants name the zones it may serve inside another team's. A zone created after the
// team's own is not held against it: that one is refused at its own save or push, so a
// squatter cannot block the owner.
func admitZone(ctx context.Context, tx store.Reader, caller store.Token, res store.Resource) error {
	if caller.Admin() {
		return nil
	}
	var z dnsctl.Zone
	if err := decodeStrict(res.Spec, &z); err != nil {
		return err
	}
	origin := canonical(z.Origin)
	all, err := tx.Resources(ctx, "zone", "", "")
	if err != nil {
		return err
	}
	grants := map[string]Grants{}
	delegated := func(team, origin string) (bool, error) {
		g, ok := grants[team]
		if !ok {
			if g, err = teamGrants(ctx, tx, team); err != nil {
				return false, err
			}
			grants[team] = g
		}
		return slices.Contains(g.Zones, origin), nil
	}
	for _, o := range all {
		if o.TeamID == res.TeamID || createdAfter(o, res) {
			continue
		}
		for _, theirs := range zoneOrigins(o) {
			var ok bool
			switch {
			case strings.HasSuffix(origin, "."+theirs):
				ok, err = delegated(res.TeamID, origin)
			case strings.HasSuffix(theirs, "."+origin):
				ok, err = delegated(o.TeamID, theirs)
			case theirs != origin:
				ok = true
			}
			if err != nil {
				return err
			}
			if !ok {
				// Without the other zone's name or ID: it is another team's.
				return api.InvalidSpec{"origin": fmt.Sprintf("%s is taken: it is, is inside or is above another team's zone; the platform admin delegates zones across teams", origin)}
			}
		}
	}
	return nil
}

// createdAfter reports whether o was created after res (a resource being created is the newest).
func createdAfter(o, res store.Resource) bool {
	if res.CreatedAt.IsZero() {
		return false
	}
	return o.CreatedAt.After(res.CreatedAt) || o.CreatedAt.Equal(res.CreatedAt) && o.ID > res.ID
}

// zoneOrigins are the origins a zone resource holds: its saved one and the one it runs.
func zoneOrigins(r store.Resource) []string {
	out := []string{r.Name}
	var pushed struct {
		Origin string `json:"origin"`
	}
	if r.PushedSpec != nil && json.Unmarshal(r.PushedSpec, &pushed) == nil && pushed.Origin != "" && canonical(pushed.Origin) != r.Name {
		out = append(out, canonical(pushed.Origin))
	}
	return out
}

func canonical(origin string) string { return strings.ToLower(strings.TrimSuffix(origin, ".")) + "." }

// changesError names a batch's field errors as the API answers them: the changes' own
// (changes[i]...) by their path in the body, the zone's that the batch would make
// (record_sets...) by their path in the resource.
func changesError(err error) error {
	var verr *dnsctl.ValidationError
	if !errors.As(err, &verr) {
		return err
	}
	fields := map[string]string{}
	for k, v := range verr.Fields() {
		if k != "changes" && !strings.HasPrefix(k, "changes[") && !strings.HasPrefix(k, "changes.") {
			k = "spec." + k
		}
		fields[k] = v
	}
	return api.Invalid(fields)
}

// Push implements api.Plane. An origin belongs to one resource: another team cannot take
// over a zone by naming the same origin.
func (p *Zones) Push(ctx context.Context, r store.Resource) error {
	var z dnsctl.Zone
	if err := decodeStrict(r.Spec, &z); err != nil {
		return err
	}
	origin := canonical(z.Origin)
	p.mu.Lock()
	defer p.mu.Unlock()
	if id, ok := p.owner[origin]; ok && id != r.ID {
		// Without the zone's ID: it may be another team's.
		return api.InvalidSpec{"origin": fmt.Sprintf("%s is taken: another zone serves it", origin)}
	}
	if _, err := p.srv.ApplyZone(ctx, z); err != nil {
		return err
	}
	for o, id := range p.owner {
		if id == r.ID && o != origin {
			// The resource's origin changed: the old zone is no longer served.
			_ = p.srv.DeleteZone(ctx, o)
			delete(p.owner, o)
		}
	}
	p.owner[origin] = r.ID
	return nil
}

// Remove implements api.Plane.
func (p *Zones) Remove(ctx context.Context, r store.Resource) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for o, id := range p.owner {
		if id == r.ID {
			if err := p.srv.DeleteZone(ctx, o); err != nil && !errors.Is(err, dnsctl.ErrZoneNotFound) {
				return err
			}
			delete(p.owner, o)
		}
	}
	return nil
}

// Status implements api.Plane: the zone as served, with its serial and active centers.
func (p *Zones) Status(_ context.Context, r store.Resource) (any, error) {
	origin, ok := p.origin(r.ID)
	if !ok {
		return nil, fmt.Errorf("zone %s (not pushed yet): %w", r.ID, store.ErrNotFound)
	}
	return p.srv.Zone(origin)
}

func (p *Zones) origin(id string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for o, owner := range p.owner {
		if owner == id {
			return o, true
		}
	}
	return "", false
}

// applyChanges applies a batch to one running zone and returns the zone as now served.
func (p *Zones) applyChanges(ctx context.Context, targets []store.Resource, input any) (map[string]json.RawMessage, any, error) {
	in := input.(*ChangesInput)
	origin, ok := p.origin(targets[0].ID)
	if !ok {
		return nil, nil, api.Conflict("the zone is not pushed yet; push it before changing its records")
	}
	serial, err := p.srv.ApplyChanges(ctx, origin, in.Changes)
	if err != nil {
		return nil, nil, changesError(err)
	}
	spec, err := p.served(origin)
	if err != nil {
		return nil, nil, err
	}
	return map[string]json.RawMessage{targets[0].ID: spec}, ChangesResult{Serial: serial}, nil
}

// served is the zone's spec as the server now runs it.
func (p *Zones) served(origin string) (json.RawMessage, error) {
	z, err := p.srv.Zone(origin)
	if err != nil {
		return nil, err
	}
	spec, err := json.Marshal(z)
	if err != nil {
		return nil, fmt.Errorf("planes: encode zone %s: %w", origin, err)
	}
	return spec, nil
}

// switchCenter switches one zone, or (targets from the collection action) every zone in one
// atomic step, and returns each switched zone's spec as now served.
func (p *Zones) switchCenter(ctx context.Context, targets []store.Resource, input any) (map[string]json.RawMessage, any, error) {
	in := input.(*SwitchInput)
	scope := dnsctl.Scope{Name: in.Name, Type: in.Type}
	if len(targets) == 1 {
		origin, ok := p.origin(targets[0].ID)
		if !ok {
			return nil, nil, api.Conflict("the zone is not pushed yet; push it before switching")
		}
		scope.Zone = origin
	} else if in.Name != "" {
		return nil, nil, api.Invalid(map[string]string{"name": "switches one record set of one zone: use /zones/{id}/switch"})
	}
	// What Switch refuses is the input (the center, the record set), not the zone.
	n, err := p.srv.Switch(ctx, scope, in.To)
	var verr *dnsctl.ValidationError
	switch {
	case errors.Is(err, dnsctl.ErrCenterNotFound):
		return nil, nil, api.Invalid(map[string]string{"to": err.Error()})
	case errors.As(err, &verr):
		return nil, nil, api.Invalid(verr.Fields())
	case err != nil:
		return nil, nil, err
	}
	changed := map[string]json.RawMessage{}
	result := SwitchResult{To: in.To, RecordSets: n, Zones: []string{}}
	for _, t := range targets {
		origin, ok := p.origin(t.ID)
		if !ok {
			continue
		}
		spec, err := p.served(origin)
		if err != nil {
			return nil, nil, err
		}
		changed[t.ID] = spec
		result.Zones = append(result.Zones, origin)
	}
	return changed, result, nil
}
