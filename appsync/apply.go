package appsync

import (
	"fmt"
	"io"
	"maps"
	"slices"
)

// applyRelease applies a release change to target: copy the artifact unless
// the target has the version, then (mode release, not superseded) release it
// unless it is the target's current version already.
func (t *task) applyRelease(c *Change, target string, res Resolution, superseded bool) (result, error) {
	r := result{seq: c.Seq, kind: c.Kind, outcome: skipped}
	if res == KeepTarget {
		return r, nil
	}
	ctx, sink := t.ctx, t.e.opts.Sink
	where := fmt.Sprintf("appsync: task %s: change %d: %s/%s version %s", t.cfg.ID, c.Seq, target, c.App, c.Version)
	digest, ok, err := sink.Version(ctx, target, c.App, c.Version)
	if err != nil {
		return result{}, fmt.Errorf("%s: read the target's version: %w", where, err)
	}
	wrote := false
	switch {
	case ok && digest != c.Digest:
		r.outcome = conflicted
		r.conflict = t.conflict(c, target, ReasonDigest)
		r.conflict.Diff = []FieldDiff{{Path: "digest", Source: mustEncode(c.Digest), Target: mustEncode(digest)}}
		return r, nil
	case !ok:
		rc, err := t.src.Artifact(ctx, c.Project, c.App, c.Version)
		if err != nil {
			return result{}, fmt.Errorf("%s: open the source's artifact: %w", where, err)
		}
		// One byte more than the size lets the Sink see an artifact that is
		// too long, without reading an endless one.
		a := Artifact{Digest: c.Digest, Size: c.Size, PieceSize: c.PieceSize, Pieces: c.Pieces}
		err = sink.AddVersion(ctx, target, c.App, c.Version, c.Notes, a, io.LimitReader(rc, c.Size+1))
		rc.Close()
		if err != nil {
			return result{}, fmt.Errorf("%s: copy the artifact: %w", where, err)
		}
		wrote = true
	}
	if t.cfg.mode() == ModeRelease && !superseded {
		cur, err := sink.Current(ctx, target, c.App)
		if err != nil {
			return result{}, fmt.Errorf("%s: read the target's current version: %w", where, err)
		}
		if cur != c.Version {
			if err := sink.Release(ctx, target, c.App, c.Version, t.mapNodes(c.Nodes)); err != nil {
				return result{}, fmt.Errorf("%s: release: %w", where, err)
			}
			wrote = true
		}
	}
	if wrote {
		r.outcome = applied
		r.applied = &Applied{Seq: c.Seq, Kind: c.Kind, Project: target, App: c.App, Version: c.Version, Time: t.e.now()}
	}
	return r, nil
}

// mapNodes returns the target's counterparts of the source's nodes, nil for
// the target app's current nodes.
func (t *task) mapNodes(nodes []string) []string {
	m := t.cfg.Version.Nodes
	if len(m) == 0 {
		return nil
	}
	var out []string
	for _, n := range nodes {
		if to, ok := m[n]; ok && !slices.Contains(out, to) {
			out = append(out, to)
		}
	}
	return out
}

// applyConfig applies a config change to target. What is compared and
// written leaves out the policy's excluded keys; the target keeps its own.
func (t *task) applyConfig(c *Change, target string, res Resolution, superseded bool) (result, error) {
	r := result{seq: c.Seq, kind: c.Kind, outcome: skipped}
	if !t.cfg.Config.includes(c.App) || superseded {
		return r, nil
	}
	ctx, sink, exclude := t.ctx, t.e.opts.Sink, t.cfg.Config.Exclude
	where := fmt.Sprintf("appsync: task %s: change %d: app %s/%s", t.cfg.ID, c.Seq, target, c.App)
	r.baselineKey = target + "/" + c.App
	raw, exists, err := sink.AppConfig(ctx, target, c.App)
	if err != nil {
		return result{}, fmt.Errorf("%s: read the target's config: %w", where, err)
	}
	var tgt, tgtExcluded map[string]any
	if exists {
		whole, err := decodeObject(raw)
		if err != nil {
			return result{}, fmt.Errorf("%s: the target's config: %w", where, err)
		}
		tgt, tgtExcluded = split(whole, exclude)
	}
	setBaseline := func(h string) { r.baseline = &h }

	if res == KeepTarget {
		if exists {
			setBaseline(hashConfig(tgt))
		} else {
			setBaseline("")
		}
		return r, nil
	}
	force := res == SourceWins
	t.mu.Lock()
	base := t.st.Baselines[r.baselineKey]
	t.mu.Unlock()
	drifted := exists && (base == "" || hashConfig(tgt) != base)

	if c.Deleted {
		if !exists {
			setBaseline("")
			return r, nil
		}
		if drifted && !force {
			r.outcome = conflicted
			r.conflict = t.conflict(c, target, ReasonDrift)
			r.conflict.Diff = diff(nil, tgt)
			return r, nil
		}
		if err := sink.DeleteApp(ctx, target, c.App); err != nil {
			return result{}, fmt.Errorf("%s: delete: %w", where, err)
		}
		setBaseline("")
		r.outcome = applied
		r.applied = &Applied{Seq: c.Seq, Kind: c.Kind, Project: target, App: c.App, Time: t.e.now()}
		return r, nil
	}

	whole, err := decodeObject(c.Config)
	if err != nil {
		// Validate accepted it, so this does not happen.
		return result{}, fmt.Errorf("%s: the source's config: %w", where, err)
	}
	src, _ := split(whole, exclude)
	if exists && equalJSON(src, tgt) {
		setBaseline(hashConfig(src))
		return r, nil
	}
	flagged := flags(src, t.ranges)
	if !force && (drifted || len(flagged) > 0) {
		reason := ReasonCenterSpecific
		if drifted {
			reason = ReasonDrift
		}
		r.outcome = conflicted
		r.conflict = t.conflict(c, target, reason)
		r.conflict.Flagged = flagged
		if drifted {
			r.conflict.Diff = diff(src, tgt)
		}
		return r, nil
	}
	out := make(map[string]any, len(src)+len(tgtExcluded))
	maps.Copy(out, src)
	maps.Copy(out, tgtExcluded)
	if err := sink.PutAppConfig(ctx, target, c.App, rawObject(out)); err != nil {
		return result{}, fmt.Errorf("%s: write the config: %w", where, err)
	}
	setBaseline(hashConfig(src))
	r.outcome = applied
	r.applied = &Applied{Seq: c.Seq, Kind: c.Kind, Project: target, App: c.App, Time: t.e.now()}
	return r, nil
}

func (t *task) conflict(c *Change, target string, reason ConflictReason) *Conflict {
	return &Conflict{
		ID: fmt.Sprintf("%s-%d", t.cfg.ID, c.Seq), Seq: c.Seq, Kind: c.Kind, Reason: reason,
		Project: target, App: c.App, Version: c.Version, Detected: t.e.now(),
	}
}
