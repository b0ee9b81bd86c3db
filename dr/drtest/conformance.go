package drtest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/shuanghuo/shuanghuo/dr"
)

// Group is a DR group under test, as TestDriver needs it: a driver and hooks
// that act on its instances as a client and as an operator would.
type Group struct {
	// Driver operates the group. TestDriver closes it.
	Driver dr.Driver
	// Write sets key on side s through an ordinary client connection; it
	// fails when the instance refuses writes.
	Write func(ctx context.Context, s dr.Side, key, value string) error
	// Read gets key on side s; ok is false when the key is absent.
	Read func(ctx context.Context, s dr.Side, key string) (value string, ok bool, err error)
	// Stop loses side s for good, as a dead machine.
	Stop func(ctx context.Context, s dr.Side) error
}

// convergeTimeout bounds how long TestDriver waits for replication.
const convergeTimeout = 10 * time.Second

// TestDriver is the conformance suite of dr.Driver. newGroup returns a fresh
// DR group whose two instances are empty, standalone and writable. The suite
// walks one group through pairing, fencing, promotion, reverse sync,
// unpairing and the loss of a primary, in subtests that depend on each
// other, checking at each stage which side takes writes.
func TestDriver(t *testing.T, newGroup func(t *testing.T) Group) {
	g := newGroup(t)
	t.Cleanup(func() { _ = g.Driver.Close() })
	ctx := t.Context()
	d := g.Driver
	a, b := dr.SideA, dr.SideB

	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}
	writable := func(t *testing.T, want ...dr.Side) {
		t.Helper()
		for _, s := range []dr.Side{a, b} {
			err := g.Write(ctx, s, "probe-"+string(s), "1")
			shouldWrite := slices.Contains(want, s)
			if shouldWrite && err != nil {
				t.Fatalf("write to %s: %v; want it writable", s, err)
			}
			if !shouldWrite && err == nil {
				t.Fatalf("write to %s succeeded; want it to refuse writes", s)
			}
		}
	}
	replicated := func(t *testing.T, s dr.Side, key, want string) {
		t.Helper()
		deadline := time.Now().Add(convergeTimeout)
		for {
			v, ok, err := g.Read(ctx, s, key)
			if err == nil && ok && v == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s has %s = %q (present %v, err %v); want %q", s, key, v, ok, err, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	caughtUp := func(t *testing.T, dir dr.Direction) dr.Status {
		t.Helper()
		deadline := time.Now().Add(convergeTimeout)
		for {
			st, err := d.Status(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			if st.InSync() && st.Lag.Known && st.Lag.Bytes == 0 {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("status %+v; want in sync with zero lag", st)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wantErr := func(t *testing.T, err, target error) {
		t.Helper()
		if !errors.Is(err, target) {
			t.Fatalf("error %v; want one wrapping %v", err, target)
		}
	}

	step("both writable before pairing", func(t *testing.T) { writable(t, a, b) })
	step("pair replicates A to B", func(t *testing.T) {
		if err := g.Write(ctx, a, "before", "pair"); err != nil {
			t.Fatal(err)
		}
		if err := d.Pair(ctx, dr.Forward); err != nil {
			t.Fatal(err)
		}
		replicated(t, b, "before", "pair")
		if err := g.Write(ctx, a, "after", "pair"); err != nil {
			t.Fatal(err)
		}
		replicated(t, b, "after", "pair")
		writable(t, a)
	})
	step("status in sync", func(t *testing.T) {
		st := caughtUp(t, dr.Forward)
		if !st.Primary.Writable() || st.Replica.Primary || st.Primary.Fenced {
			t.Fatalf("status %+v; want a writable primary and a replica", st)
		}
		if st.LastContact.IsZero() {
			t.Fatalf("status %+v; want the replica's last contact", st)
		}
	})
	step("compare finds the keys equal", func(t *testing.T) {
		c, err := d.Compare(ctx, dr.Forward, 10)
		if err != nil {
			t.Fatal(err)
		}
		if c.Sampled == 0 || !c.Consistent() {
			t.Fatalf("comparison %+v; want sampled keys, all equal", c)
		}
	})
	step("promotion refused while the primary takes writes", func(t *testing.T) {
		_, err := d.Promote(ctx, dr.Forward, dr.PromoteOptions{Force: true})
		wantErr(t, err, dr.ErrNotFenced)
		writable(t, a)
	})
	step("fence and unfence", func(t *testing.T) {
		if err := d.Fence(ctx, dr.Forward); err != nil {
			t.Fatal(err)
		}
		writable(t)
		st, err := d.Status(ctx, dr.Forward)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Primary.Fenced {
			t.Fatalf("status %+v; want the primary fenced", st)
		}
		if err := d.Unfence(ctx, dr.Forward); err != nil {
			t.Fatal(err)
		}
		writable(t, a)
		if err := d.Fence(ctx, dr.Forward); err != nil {
			t.Fatal(err)
		}
		writable(t)
	})
	step("promote after catching up", func(t *testing.T) {
		caughtUp(t, dr.Forward)
		st, err := d.Promote(ctx, dr.Forward, dr.PromoteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !st.Lag.Known || st.Lag.Bytes != 0 {
			t.Fatalf("promotion status lag %+v; want known and zero", st.Lag)
		}
		writable(t, b)
		if err := g.Write(ctx, b, "on", "b"); err != nil {
			t.Fatal(err)
		}
	})
	step("reverse sync makes A a replica of B", func(t *testing.T) {
		if err := d.Pair(ctx, dr.Reverse); err != nil {
			t.Fatal(err)
		}
		replicated(t, a, "on", "b")
		replicated(t, a, "before", "pair")
		writable(t, b)
		caughtUp(t, dr.Reverse)
	})
	step("unpair leaves the replica fenced", func(t *testing.T) {
		if err := d.Unpair(ctx, dr.Reverse); err != nil {
			t.Fatal(err)
		}
		writable(t, b)
		if v, ok, err := g.Read(ctx, a, "on"); err != nil || !ok || v != "b" {
			t.Fatalf("a has on = %q (present %v, err %v) after unpairing; want its data kept", v, ok, err)
		}
		if err := d.Pair(ctx, dr.Reverse); err != nil {
			t.Fatal(err)
		}
		caughtUp(t, dr.Reverse)
		writable(t, b)
	})
	step("promotion refused while the lag is unknown unless forced", func(t *testing.T) {
		if err := g.Stop(ctx, b); err != nil {
			t.Fatal(err)
		}
		st, err := d.Status(ctx, dr.Reverse)
		if err != nil {
			t.Fatal(err)
		}
		if st.Primary.Reachable || st.Lag.Known {
			t.Fatalf("status %+v after losing the primary; want it unreachable and the lag unknown", st)
		}
		_, err = d.Promote(ctx, dr.Reverse, dr.PromoteOptions{})
		wantErr(t, err, dr.ErrLagUnknown)
		if err := g.Write(ctx, a, "x", "1"); err == nil {
			t.Fatal("a took a write after a refused promotion")
		}
		st, err = d.Promote(ctx, dr.Reverse, dr.PromoteOptions{Force: true})
		if err != nil {
			t.Fatal(err)
		}
		if st.Lag.Known {
			t.Fatalf("forced promotion reported lag %+v; want it unknown", st.Lag)
		}
		if err := g.Write(ctx, a, "x", "1"); err != nil {
			t.Fatalf("a refused a write after a forced promotion: %v", err)
		}
	})
}
