package dnsctl

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/miekg/dns"
	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// maxJournal is how many changes per zone are kept for IXFR; a secondary further
// behind gets the whole zone.
const maxJournal = 64

// ApplyZone creates z or replaces the zone with z's origin, atomically, and
// returns the new serial. Replacing keeps the serial increasing: the zone gets
// the larger of z.SOA.Serial and the previous serial plus one.
func (s *Server) ApplyZone(ctx context.Context, z Zone) (uint32, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := z.Validate(); err != nil {
		return 0, err
	}
	z = z.normalize()
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.zones[z.Origin]
	if old != nil && old.secondary {
		return 0, fmt.Errorf("%w: %s", ErrReadOnlyZone, z.Origin)
	}
	if _, ok := s.notifyCh[z.Origin]; ok {
		return 0, fmt.Errorf("%w: %s is transferred from the primary", ErrReadOnlyZone, z.Origin)
	}
	z.SOA.Serial = max(z.SOA.Serial, 1)
	if old != nil {
		z.SOA.Serial = max(z.SOA.Serial, old.spec.SOA.Serial+1)
	}
	zs, err := s.newZoneState(z, false)
	if err != nil {
		return 0, err
	}
	s.publish(map[string]*zoneState{z.Origin: zs})
	return z.SOA.Serial, nil
}

// DeleteZone stops serving the zone.
func (s *Server) DeleteZone(ctx context.Context, origin string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	origin = dns.CanonicalName(origin)
	s.mu.Lock()
	defer s.mu.Unlock()
	zs := s.zones[origin]
	switch {
	case zs == nil:
		return fmt.Errorf("%w: %s", ErrZoneNotFound, origin)
	case zs.secondary:
		return fmt.Errorf("%w: %s", ErrReadOnlyZone, origin)
	}
	s.publish(map[string]*zoneState{origin: nil})
	return nil
}

// ApplyChanges applies a batch of record-set changes to a zone atomically: all
// of them or, on any error, none. It returns the new serial.
func (s *Server) ApplyChanges(ctx context.Context, origin string, changes []Change) (uint32, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	origin = dns.CanonicalName(origin)
	s.mu.Lock()
	defer s.mu.Unlock()
	zs, err := s.writable(origin)
	if err != nil {
		return 0, err
	}
	spec := zs.spec
	sets := slices.Clone(spec.RecordSets)
	parsed := slices.Clone(zs.parsed)
	var fe fieldErrors
	for i, c := range changes {
		p := fmt.Sprintf("changes[%d]", i)
		checkStruct(&fe, p, c)
		name, ok := ownerName(c.Set.Name, origin)
		if !ok {
			if c.Set.Name != "" {
				fe.add(p+".set.name", "must be a domain name in zone %s", origin)
			}
			continue
		}
		idx := slices.IndexFunc(sets, func(rs RecordSet) bool { return rs.Name == name && rs.Type == c.Set.Type })
		switch c.Op {
		case OpAdd, OpUpdate:
			if c.Op == OpAdd && idx >= 0 {
				return 0, fmt.Errorf("%w: %s %s in %s", ErrRecordSetExists, name, c.Set.Type, origin)
			}
			if c.Op == OpUpdate && idx < 0 {
				return 0, fmt.Errorf("%w: %s %s in %s", ErrRecordSetNotFound, name, c.Set.Type, origin)
			}
			before := len(fe.list)
			c.Set.check(&fe, p+".set", origin)
			if len(fe.list) > before {
				continue
			}
			rs := c.Set.normalize(origin, spec.TTL)
			ps, err := parseSet(rs, origin)
			if err != nil {
				fe.add(p+".set", "%v", err)
				continue
			}
			if idx < 0 {
				sets, parsed = append(sets, rs), append(parsed, ps)
			} else {
				sets[idx], parsed[idx] = rs, ps
			}
		case OpDelete:
			if idx < 0 {
				return 0, fmt.Errorf("%w: %s %s in %s", ErrRecordSetNotFound, name, c.Set.Type, origin)
			}
			sets, parsed = slices.Delete(sets, idx, idx+1), slices.Delete(parsed, idx, idx+1)
		}
	}
	checkSets(&fe, "record_sets", origin, sets)
	if err := fe.err(); err != nil {
		return 0, err
	}
	spec.RecordSets = sets
	spec.SOA.Serial++
	next := &zoneState{spec: spec, parsed: parsed, journal: zs.journal}
	next.snap = buildZone(spec, parsed, false, s.cfg.Center)
	s.publish(map[string]*zoneState{origin: next})
	return spec.SOA.Serial, nil
}

// writable returns the zone if the API may change it. Caller holds s.mu.
func (s *Server) writable(origin string) (*zoneState, error) {
	zs := s.zones[origin]
	switch {
	case zs == nil:
		if _, ok := s.notifyCh[origin]; ok {
			return nil, fmt.Errorf("%w: %s", ErrReadOnlyZone, origin)
		}
		return nil, fmt.Errorf("%w: %s", ErrZoneNotFound, origin)
	case zs.secondary:
		return nil, fmt.Errorf("%w: %s", ErrReadOnlyZone, origin)
	}
	return zs, nil
}

// Switch makes center to (or AllCenters) the active one for every record set
// with centers in scope, in one atomic step: a query is answered either wholly
// before or wholly after it. It returns how many record sets changed. If any
// record set in scope has no targets for to, nothing changes and the error
// wraps ErrCenterNotFound.
func (s *Server) Switch(ctx context.Context, scope Scope, to string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := scope.Validate(); err != nil {
		return 0, err
	}
	if to == "" {
		return 0, validate.One(ErrInvalid, "center", "is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var origins []string
	if scope.Zone != "" {
		origin := dns.CanonicalName(scope.Zone)
		if _, err := s.writable(origin); err != nil {
			return 0, err
		}
		origins = []string{origin}
	} else {
		for origin, zs := range s.zones {
			if !zs.secondary {
				origins = append(origins, origin)
			}
		}
	}
	matched, moved := 0, 0
	changed := map[string]*zoneState{}
	for _, origin := range origins {
		zs := s.zones[origin]
		var name string
		if scope.Name != "" {
			name, _ = ownerName(scope.Name, origin)
		}
		var sets []RecordSet
		for i, rs := range zs.spec.RecordSets {
			if len(rs.Centers) == 0 || (name != "" && (rs.Name != name || rs.Type != scope.Type)) {
				continue
			}
			matched++
			if _, ok := rs.Centers[to]; !ok && to != AllCenters {
				return 0, fmt.Errorf("%w: %q in %s %s", ErrCenterNotFound, to, rs.Name, rs.Type)
			}
			if rs.Active == to {
				continue
			}
			if sets == nil {
				sets = slices.Clone(zs.spec.RecordSets)
			}
			sets[i].Active = to
			moved++
		}
		if sets != nil {
			spec := zs.spec
			spec.RecordSets = sets
			spec.SOA.Serial++
			next := &zoneState{spec: spec, parsed: zs.parsed, journal: zs.journal}
			next.snap = buildZone(spec, zs.parsed, false, s.cfg.Center)
			changed[origin] = next
		}
	}
	if matched == 0 {
		return 0, fmt.Errorf("%w: no record set with centers in scope %+v", ErrRecordSetNotFound, scope)
	}
	if len(changed) > 0 {
		s.publish(changed)
	}
	return moved, nil
}

// publish installs changed zone states (nil deletes the zone) in one snapshot
// swap, journals the differences for IXFR and notifies secondaries. Caller
// holds s.mu.
func (s *Server) publish(changed map[string]*zoneState) {
	cur := s.snap.Load()
	next := &snapshot{zones: maps.Clone(cur.zones), views: cur.views}
	var notify []*dns.SOA
	for origin, zs := range changed {
		if zs == nil {
			delete(next.zones, origin)
			delete(s.zones, origin)
			continue
		}
		if old := s.zones[origin]; old != nil {
			d := newDelta(old.snap, zs.snap)
			zs.journal = append(slices.Clone(old.journal), d)
			if len(zs.journal) > maxJournal {
				zs.journal = zs.journal[len(zs.journal)-maxJournal:]
			}
		}
		s.zones[origin] = zs
		next.zones[origin] = zs.snap
		if !zs.secondary {
			notify = append(notify, zs.snap.soa)
		}
	}
	s.snap.Store(next)
	s.health.setProbes(next)
	for _, soa := range notify {
		s.notifySecondaries(soa)
	}
}

// Zones lists the served zones by origin.
func (s *Server) Zones() []ZoneInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ZoneInfo, 0, len(s.zones))
	for _, origin := range sortedKeys(s.zones) {
		zs := s.zones[origin]
		out = append(out, ZoneInfo{Origin: origin, Serial: zs.spec.SOA.Serial, RecordSets: len(zs.spec.RecordSets), Secondary: zs.secondary})
	}
	return out
}

// Zone returns the zone's definition with its current serial and active centers.
func (s *Server) Zone(origin string) (Zone, error) {
	origin = dns.CanonicalName(origin)
	s.mu.Lock()
	defer s.mu.Unlock()
	zs := s.zones[origin]
	if zs == nil {
		return Zone{}, fmt.Errorf("%w: %s", ErrZoneNotFound, origin)
	}
	return zs.spec.clone(), nil
}

// Records returns the zone's record sets, names absolute.
func (s *Server) Records(origin string) ([]RecordSet, error) {
	z, err := s.Zone(origin)
	return z.RecordSets, err
}

// SetViews replaces the views (split horizon) in one atomic step: a query is answered with
// the old views or the new, never a mix. Invalid views return a *ValidationError whose paths
// start at "views[i]", and change nothing.
func (s *Server) SetViews(ctx context.Context, views []View) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var fe fieldErrors
	for i, v := range views {
		checkStruct(&fe, fmt.Sprintf("views[%d]", i), v)
	}
	if err := fe.err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.snap.Load()
	s.snap.Store(&snapshot{zones: cur.zones, views: parseViews(views)})
	s.cfg.Views = slices.Clone(views)
	return nil
}

// Views returns the views in force.
func (s *Server) Views() []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.cfg.Views)
}
