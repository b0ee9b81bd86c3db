package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Secret fields of resource specs are declared per kind (DeclareSecrets) as paths inside
// the spec: dotted object keys, with "[]" after a key whose value is an array to cover each
// item, such as "a.password", "ssh.password" or "instances[].password". The store seals
// them before they are written (bound to kind, resource ID and declared path), opens them
// for its readers, and writes them as Hidden in the audit log; answers redact the same
// paths with Redact.

// Hidden stands for a secret in answers and the audit log. Sent back in a spec, it means
// "keep the stored secret" (KeepHidden).
const Hidden = "(hidden)"

// secretsAD starts the binding of a sealed spec field.
const secretsAD = "shuanghuo resource secret"

// eachSecret calls fn with every non-empty string at paths in spec, and replaces it with
// what fn returns. declared is the path as declared, at the path with array indexes
// ("instances[1].password"). The spec comes back as it was when nothing changed, else
// encoded again.
func eachSecret(spec json.RawMessage, paths []string, fn func(declared, at, v string) (string, error)) (json.RawMessage, error) {
	if len(paths) == 0 || len(spec) == 0 {
		return spec, nil
	}
	dec := json.NewDecoder(bytes.NewReader(spec))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("store: decode spec for its secrets: %w", err)
	}
	changed := false
	for _, p := range paths {
		c, err := walk(doc, strings.Split(p, "."), p, "", fn)
		if err != nil {
			return nil, err
		}
		changed = changed || c
	}
	if !changed {
		return spec, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("store: encode spec: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func walk(v any, segs []string, declared, at string, fn func(declared, at, v string) (string, error)) (bool, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return false, nil
	}
	key, each := strings.CutSuffix(segs[0], "[]")
	child, ok := m[key]
	if !ok {
		return false, nil
	}
	if at != "" {
		at += "."
	}
	at += key
	if !each {
		if len(segs) > 1 {
			return walk(child, segs[1:], declared, at, fn)
		}
		s, ok := child.(string)
		if !ok || s == "" {
			return false, nil
		}
		out, err := fn(declared, at, s)
		m[key] = out
		return out != s, err
	}
	items, _ := child.([]any)
	changed := false
	for i, item := range items {
		itemAt := at + "[" + strconv.Itoa(i) + "]"
		if len(segs) > 1 {
			c, err := walk(item, segs[1:], declared, itemAt, fn)
			if err != nil {
				return changed, err
			}
			changed = changed || c
			continue
		}
		s, ok := item.(string)
		if !ok || s == "" {
			continue
		}
		out, err := fn(declared, itemAt, s)
		if err != nil {
			return changed, err
		}
		items[i] = out
		changed = changed || out != s
	}
	return changed, nil
}

// Redact replaces the secrets at paths in spec with Hidden, for answers.
func Redact(spec json.RawMessage, paths []string) json.RawMessage {
	out, err := eachSecret(spec, paths, func(_, _, _ string) (string, error) { return Hidden, nil })
	if err != nil {
		// Not JSON: nothing of it can be shown safely.
		return json.RawMessage(strconv.Quote(Hidden))
	}
	return out
}

// Placeholders lists where spec holds Hidden at a secret path ("a.password").
func Placeholders(spec json.RawMessage, paths []string) []string {
	var at []string
	_, _ = eachSecret(spec, paths, func(_, where, v string) (string, error) {
		if v == Hidden {
			at = append(at, where)
		}
		return v, nil
	})
	return at
}

// KeepHidden puts the secrets of old back where spec holds Hidden at the same place, so
// that a spec read (redacted) and sent back keeps what is stored. missing lists the places
// with Hidden where old has no secret.
func KeepHidden(spec, old json.RawMessage, paths []string) (out json.RawMessage, missing []string, err error) {
	stored := map[string]string{}
	if _, err := eachSecret(old, paths, func(_, at, v string) (string, error) { stored[at] = v; return v, nil }); err != nil {
		return nil, nil, err
	}
	out, err = eachSecret(spec, paths, func(_, at, v string) (string, error) {
		if v != Hidden {
			return v, nil
		}
		if s, ok := stored[at]; ok {
			return s, nil
		}
		missing = append(missing, at)
		return v, nil
	})
	return out, missing, err
}

// secretPaths returns the declared secret paths of kind.
func (s *SQLite) secretPaths(kind string) []string {
	s.smu.RLock()
	defer s.smu.RUnlock()
	return s.secrets[kind]
}

// sealSpec seals the secrets of a spec of kind id for the database.
func (s *SQLite) sealSpec(kind, id string, spec json.RawMessage, paths []string) (json.RawMessage, error) {
	return eachSecret(spec, paths, func(declared, _, v string) (string, error) {
		return s.sealer.Seal(v, secretsAD, kind, id, declared)
	})
}

// openSpec opens the sealed secrets of a spec read from the database.
func (s *SQLite) openSpec(kind, id string, spec json.RawMessage) (json.RawMessage, error) {
	return eachSecret(spec, s.secretPaths(kind), func(declared, at, v string) (string, error) {
		plain, err := s.sealer.Open(v, secretsAD, kind, id, declared)
		if err != nil {
			return "", fmt.Errorf("%s %s: spec %s: %w", kind, id, at, err)
		}
		return plain, nil
	})
}

// redacted is r as the audit log keeps it: its secrets Hidden.
func (s *SQLite) redacted(r Resource) Resource {
	paths := s.secretPaths(r.Kind)
	r.Spec = Redact(r.Spec, paths)
	if r.PushedSpec != nil {
		r.PushedSpec = Redact(r.PushedSpec, paths)
	}
	return r
}
