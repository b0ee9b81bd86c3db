package appsync

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzDecodePage decodes a page of the feed protocol as HTTPSource does,
// then checks what a task would: every change kept verifies, every one
// refused does not, Validate never panics, and a verified change still
// verifies after another trip over the wire. Seeds are in
// testdata/fuzz/FuzzDecodePage.
func FuzzDecodePage(f *testing.F) {
	c := release()
	Sign(key, &c)
	d := config()
	Sign(key, &d)
	page, _ := json.Marshal(wirePage{Changes: []Change{c, d}, Head: 9})
	f.Add(page)
	f.Add([]byte(`{"changes":[],"head":0}`))
	now := func() time.Time { return time.Unix(0, 0) }
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := decodePage(bytes.NewReader(data), key, 1<<20, now)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error does not wrap ErrProtocol: %v", err)
			}
			return
		}
		for i := range p.Changes {
			c := &p.Changes[i]
			if err := Verify(key, c); err != nil {
				t.Fatalf("kept a change that does not verify: %v", err)
			}
			_ = c.Validate()
			wire, err := json.Marshal(c)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			var again Change
			if err := json.Unmarshal(wire, &again); err != nil {
				t.Fatalf("decode %s: %v", wire, err)
			}
			if err := Verify(key, &again); err != nil {
				t.Fatalf("MAC lost on the wire: %v\n%s", err, wire)
			}
		}
		for _, r := range p.Rejected {
			if r.Error == "" {
				t.Fatal("rejection without a reason")
			}
		}
	})
}
