package dnsctl

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSwitchScopes(t *testing.T) {
	ctx := context.Background()
	s := startServer(t, Config{Zones: []Zone{testZone(), hospZone()}})
	a := newAsker(t, s.Addr(), "")
	api := func() []string { return addrs(a.ask("api.ybj.internal.", dns.TypeA)) }
	db := func() []string { return addrs(a.ask("db.hosp.internal.", dns.TypeA)) }

	n, err := s.Switch(ctx, Scope{Zone: "ybj.internal.", Name: "api", Type: "A"}, "b")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, []string{"10.2.0.10", "10.2.0.11"}, api())
	assert.Equal(t, []string{"10.1.1.1"}, db())
	assert.Equal(t, uint32(2), a.ask("ybj.internal.", dns.TypeSOA).Answer[0].(*dns.SOA).Serial, "a switch bumps the serial")

	n, err = s.Switch(ctx, Scope{Zone: "hosp.internal"}, "b")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, []string{"10.2.1.1"}, db())

	n, err = s.Switch(ctx, Scope{}, "a")
	require.NoError(t, err)
	assert.Equal(t, 3, n, "api and db move back; redis leaves active-active for a")
	assert.Equal(t, []string{"10.1.0.10", "10.1.0.11"}, api())

	_, err = s.Switch(ctx, Scope{}, "c")
	require.ErrorIs(t, err, ErrCenterNotFound)
	assert.Equal(t, []string{"10.1.0.10", "10.1.0.11"}, api(), "a failed switch changes nothing")
	_, err = s.Switch(ctx, Scope{Zone: "ybj.internal.", Name: "mail", Type: "A"}, "b")
	require.ErrorIs(t, err, ErrRecordSetNotFound)
	_, err = s.Switch(ctx, Scope{Zone: "nope.internal."}, "b")
	require.ErrorIs(t, err, ErrZoneNotFound)
	_, err = s.Switch(ctx, Scope{Name: "api"}, "b")
	require.ErrorIs(t, err, ErrInvalid)

	n, err = s.Switch(ctx, Scope{Zone: "ybj.internal.", Name: "api", Type: "A"}, AllCenters)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	sets, _ := s.Records("ybj.internal.")
	assert.Equal(t, AllCenters, sets[2].Active)
}

// TestSwitchIsAtomic flips two zones back and forth under concurrent queries
// whose answers span both zones: every answer must come wholly from one center.
func TestSwitchIsAtomic(t *testing.T) {
	ctx := context.Background()
	z1 := Zone{Origin: "ybj.internal.", RecordSets: []RecordSet{
		{Name: "api", Type: "A", Centers: map[string][]string{"a": {"10.1.0.10", "10.1.0.11", "10.1.0.12"}, "b": {"10.2.0.10", "10.2.0.11", "10.2.0.12"}}, Active: "a"},
		{Name: "chain", Type: "CNAME", Centers: map[string][]string{"a": {"a-side.hosp.internal."}, "b": {"b-side.hosp.internal."}}, Active: "a"},
	}}
	z2 := Zone{Origin: "hosp.internal.", RecordSets: []RecordSet{
		{Name: "a-side", Type: "A", Centers: map[string][]string{"a": {"10.1.9.1"}, "b": {"10.2.9.1"}}, Active: "a"},
		{Name: "b-side", Type: "A", Centers: map[string][]string{"a": {"10.1.9.2"}, "b": {"10.2.9.2"}}, Active: "a"},
	}}
	s := startServer(t, Config{Zones: []Zone{z1, z2}})

	// center of an answer: "a", "b", or "mixed".
	centerOf := func(m *dns.Msg) string {
		seen := map[string]bool{}
		for _, rr := range m.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				seen[map[bool]string{true: "a", false: "b"}[strings.HasPrefix(rr.A.String(), "10.1.")]] = true
			case *dns.CNAME:
				seen[map[bool]string{true: "a", false: "b"}[strings.HasPrefix(rr.Target, "a-side")]] = true
			}
		}
		if len(seen) != 1 {
			return "mixed"
		}
		for c := range seen {
			return c
		}
		return ""
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var counts [3]atomic.Int64 // a, b, mixed
	for i := range 4 {
		wg.Go(func() {
			a := newAsker(t, s.Addr(), "")
			name := []string{"api.ybj.internal.", "chain.ybj.internal."}[i%2]
			for {
				select {
				case <-stop:
					return
				default:
				}
				m := new(dns.Msg)
				m.SetQuestion(name, dns.TypeA)
				resp, _, err := a.udp.Exchange(m, a.server)
				if err != nil {
					continue
				}
				switch centerOf(resp) {
				case "a":
					counts[0].Add(1)
				case "b":
					counts[1].Add(1)
				default:
					counts[2].Add(1)
					t.Errorf("mixed answer: %v", resp.Answer)
				}
			}
		})
	}
	to := []string{"b", "a"}
	for i := range 200 {
		_, err := s.Switch(ctx, Scope{}, to[i%2])
		require.NoError(t, err)
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("answers: a=%d b=%d mixed=%d", counts[0].Load(), counts[1].Load(), counts[2].Load())
	assert.Positive(t, counts[0].Load())
	assert.Positive(t, counts[1].Load())
	assert.Zero(t, counts[2].Load())
}
