package dnsctl

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/shuanghuo/shuanghuo/internal/testlog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var xfrKey = TSIGKey{Name: "xfr.ybj.", Secret: base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))}

// freeAddr finds a port free for both UDP and TCP on ip, for a server whose
// address another server's config must name before it starts.
func freeAddr(t *testing.T, ip string) string {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", ip+":0")
		require.NoError(t, err)
		addr := pc.LocalAddr().String()
		ln, err := net.Listen("tcp", addr)
		pc.Close()
		if err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port")
	return ""
}

func transferPair(t *testing.T) (primary, secondary *Server) {
	secAddr := freeAddr(t, "127.0.0.2")
	primary = startServer(t, Config{
		Zones:       []Zone{testZone()},
		TSIGKeys:    []TSIGKey{xfrKey},
		Secondaries: []Secondary{{Addr: secAddr, Key: xfrKey.Name}},
	})
	secondary = startServer(t, Config{
		UDPAddr:  secAddr,
		TSIGKeys: []TSIGKey{xfrKey},
		Primary:  &Primary{Addr: primary.Addr(), Key: xfrKey.Name, Zones: []string{"ybj.internal."}, Refresh: Duration(time.Hour)},
	})
	return primary, secondary
}

func TestTransferNotifyIXFR(t *testing.T) {
	ctx := context.Background()
	primary, secondary := transferPair(t)
	sec := newAsker(t, secondary.Addr(), "")
	apiOn := func(want ...string) {
		t.Helper()
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			assert.Equal(c, want, addrs(sec.ask("api.ybj.internal.", dns.TypeA)))
		}, 5*time.Second, 10*time.Millisecond)
	}

	// AXFR at start.
	apiOn("10.1.0.10", "10.1.0.11")
	assert.Equal(t, []ZoneInfo{{Origin: "ybj.internal.", Serial: 1, RecordSets: len(testZone().RecordSets), Secondary: true}}, secondary.Zones())
	assert.Equal(t, dns.RcodeNameError, sec.ask("nope.ybj.internal.", dns.TypeA).Rcode)

	// A change: NOTIFY, then IXFR.
	_, err := primary.ApplyChanges(ctx, "ybj.internal.", []Change{
		{Op: OpAdd, Set: RecordSet{Name: "new", Type: "A", Data: []string{"10.9.9.9"}}},
		{Op: OpDelete, Set: RecordSet{Name: "mail", Type: "A"}},
	})
	require.NoError(t, err)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, []string{"10.9.9.9"}, addrs(sec.ask("new.ybj.internal.", dns.TypeA)))
	}, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, dns.RcodeNameError, sec.ask("mail.ybj.internal.", dns.TypeA).Rcode)

	// A switch on the primary reaches the secondary the same way.
	_, err = primary.Switch(ctx, Scope{}, "b")
	require.NoError(t, err)
	apiOn("10.2.0.10", "10.2.0.11")
	assert.Equal(t, uint32(3), secondary.Zones()[0].Serial)
	assert.GreaterOrEqual(t, primary.Status().Stats.NotifiesSent, uint64(2))
	assert.Equal(t, uint64(3), secondary.Status().Stats.TransfersIn)

	// The copy is read-only.
	_, err = secondary.ApplyChanges(ctx, "ybj.internal.", nil)
	require.ErrorIs(t, err, ErrReadOnlyZone)
	_, err = secondary.ApplyZone(ctx, testZone())
	require.ErrorIs(t, err, ErrReadOnlyZone)

	// Center A is gone: B keeps answering from its copy.
	require.NoError(t, primary.Close(ctx))
	apiOn("10.2.0.10", "10.2.0.11")
}

func TestIXFRAnswer(t *testing.T) {
	ctx := context.Background()
	primary, _ := transferPair(t)
	_, err := primary.ApplyChanges(ctx, "ybj.internal.", []Change{{Op: OpUpdate, Set: RecordSet{Name: "mail", Type: "A", Data: []string{"10.0.0.26"}}}})
	require.NoError(t, err)
	_, err = primary.Switch(ctx, Scope{Zone: "ybj.internal."}, "b")
	require.NoError(t, err)

	xfr := func(q *dns.Msg, key bool) ([]dns.RR, error) {
		tr := &dns.Transfer{}
		if key {
			tr.TsigSecret = map[string]string{xfrKey.Name: xfrKey.Secret}
			q.SetTsig(xfrKey.Name, dns.HmacSHA256, 300, time.Now().Unix())
		}
		ch, err := tr.In(q, primary.Addr())
		if err != nil {
			return nil, err
		}
		var rrs []dns.RR
		for env := range ch {
			if env.Error != nil {
				return rrs, env.Error
			}
			rrs = append(rrs, env.RR...)
		}
		return rrs, nil
	}
	q := new(dns.Msg)
	q.SetIxfr("ybj.internal.", 1, "ns1.ybj.internal.", "hostmaster.ybj.internal.")
	rrs, err := xfr(q, true)
	require.NoError(t, err)
	var serials []uint32
	var body []string
	for _, rr := range rrs {
		if soa, ok := rr.(*dns.SOA); ok {
			serials = append(serials, soa.Serial)
		} else {
			body = append(body, rdata([]dns.RR{rr})...)
		}
	}
	assert.Equal(t, []uint32{3, 1, 2, 2, 3, 3}, serials, "incremental: new, (old, new) per change, new")
	assert.Equal(t, []string{"A 10.0.0.25", "A 10.0.0.26", "A 10.1.0.10", "A 10.1.0.11", "A 10.1.0.20", "A 10.2.0.10", "A 10.2.0.11", "A 10.2.0.20"},
		body, "mail changed; api and redis (active-active until the switch) moved to b")

	q = new(dns.Msg)
	q.SetIxfr("ybj.internal.", 3, "ns1.ybj.internal.", "hostmaster.ybj.internal.")
	rrs, err = xfr(q, true)
	require.NoError(t, err)
	assert.Len(t, rrs, 1, "a current secondary gets the SOA alone")

	q = new(dns.Msg)
	q.SetAxfr("ybj.internal.")
	rrs, err = xfr(q, true)
	require.NoError(t, err)
	require.Len(t, rrs, 32)
	assert.Equal(t, uint32(3), rrs[0].(*dns.SOA).Serial)
	assert.Equal(t, uint32(3), rrs[31].(*dns.SOA).Serial)
	assert.Contains(t, rdata(rrs), "A 10.2.0.10", "record sets with centers carry the active center's targets")
	assert.NotContains(t, rdata(rrs), "A 10.1.0.10")

	q = new(dns.Msg)
	q.SetAxfr("ybj.internal.")
	_, err = xfr(q, false)
	require.Error(t, err, "unsigned transfers are refused when the secondary has a key")
}

// brokenPipe is a client that went away: every write fails.
type brokenPipe struct{ recorder }

func (b *brokenPipe) WriteMsg(*dns.Msg) error   { return net.ErrClosed }
func (b *brokenPipe) Write([]byte) (int, error) { return 0, net.ErrClosed }

func TestTransferToVanishedClient(t *testing.T) {
	z := testZone()
	for i := range 3 * xfrChunk { // several messages
		z.RecordSets = append(z.RecordSets, RecordSet{Name: fmt.Sprintf("host%d", i), Type: "A", Data: []string{"10.0.0.1"}})
	}
	s, err := New(Config{Logger: quietLogger(), Zones: []Zone{z}, Secondaries: []Secondary{{Addr: "127.0.0.1:53"}}})
	require.NoError(t, err)
	q := new(dns.Msg)
	q.SetAxfr("ybj.internal.")
	done := make(chan struct{})
	go func() {
		handler{s}.ServeDNS(&brokenPipe{}, q)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the transfer handler hangs when the client is gone")
	}
}

// A secondary started before its primary has the zone (the usual order of a two-center start)
// logs its first failed transfers at Info, and only a run of more than warnAfter at Warn; once
// the zone is there, it transfers it.
func TestSecondaryBeforeItsPrimaryHasTheZone(t *testing.T) {
	secAddr := freeAddr(t, "127.0.0.2")
	primary := startServer(t, Config{TSIGKeys: []TSIGKey{xfrKey}, Secondaries: []Secondary{{Addr: secAddr, Key: xfrKey.Name}}})
	var logs testlog.Buffer
	secondary := startServer(t, Config{
		UDPAddr:  secAddr,
		TSIGKeys: []TSIGKey{xfrKey},
		Logger:   slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Primary:  &Primary{Addr: primary.Addr(), Key: xfrKey.Name, Zones: []string{"ybj.internal."}, Refresh: Duration(time.Hour)},
	})
	require.Eventually(t, func() bool {
		return strings.Count(logs.String(), `msg="dnsctl: zone transfer in"`) >= warnAfter+1
	}, 10*time.Second, 50*time.Millisecond)
	var infos, warns int
	for _, line := range strings.Split(logs.String(), "\n") {
		switch {
		case strings.Contains(line, `msg="dnsctl: zone transfer in"`) && strings.Contains(line, "level=INFO"):
			infos++
		case strings.Contains(line, `msg="dnsctl: zone transfer in"`) && strings.Contains(line, "level=WARN"):
			warns++
		}
	}
	require.Equal(t, warnAfter, infos, logs.String())
	require.GreaterOrEqual(t, warns, 1, "a longer run of failures is an outage")

	_, err := primary.ApplyZone(context.Background(), testZone())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(secondary.Zones()) == 1 }, 10*time.Second, 50*time.Millisecond)
}
