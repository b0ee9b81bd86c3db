package dnsctl

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeUpstream is a resolver on loopback answering every A query with addr,
// "missing." with NXDOMAIN, "big." truncated over UDP, and everything with
// rcode when set.
type fakeUpstream struct {
	addr    string
	queries atomic.Int64
	rcode   atomic.Int32
}

func startUpstream(t *testing.T, answer string) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		u.queries.Add(1)
		m := new(dns.Msg)
		m.SetReply(r)
		m.RecursionAvailable = true
		q := r.Question[0]
		_, udp := w.RemoteAddr().(*net.UDPAddr)
		switch {
		case u.rcode.Load() != 0:
			m.Rcode = int(u.rcode.Load())
		case q.Name == "missing.":
			m.Rcode = dns.RcodeNameError
			m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 600},
				Ns: "a.root.", Mbox: "nstld.", Serial: 1, Minttl: 60}}
		case q.Name == "big." && udp:
			m.Truncated = true
		default:
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 120}, A: net.ParseIP(answer)}}
		}
		_ = w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	require.NoError(t, err)
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	u.addr = pc.LocalAddr().String()
	return u
}

// deadUpstream is a socket that reads nothing and answers nothing.
func deadUpstream(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

func TestForwardingFailsOver(t *testing.T) {
	live := startUpstream(t, "192.0.2.1")
	reg := prometheus.NewRegistry()
	s := startServer(t, Config{
		Zones:          []Zone{testZone()},
		Forwarders:     []string{deadUpstream(t), live.addr},
		ForwardTimeout: Duration(300 * time.Millisecond),
		Registerer:     reg,
	})
	a := newAsker(t, s.Addr(), "")

	start := time.Now()
	resp := a.ask("example.org.", dns.TypeA)
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "the dead upstream is tried first")
	assert.Equal(t, []string{"192.0.2.1"}, addrs(resp))
	assert.True(t, resp.RecursionAvailable)
	assert.False(t, resp.Authoritative)

	start = time.Now()
	resp = a.ask("example.net.", dns.TypeA)
	assert.Less(t, time.Since(start), 300*time.Millisecond, "the live upstream is now tried first")
	assert.Equal(t, []string{"192.0.2.1"}, addrs(resp))

	before := live.queries.Load()
	resp = a.ask("EXAMPLE.org.", dns.TypeA)
	assert.Equal(t, []string{"192.0.2.1"}, addrs(resp))
	assert.LessOrEqual(t, resp.Answer[0].Header().Ttl, uint32(120))
	assert.Equal(t, before, live.queries.Load(), "answered from the cache")

	resp = a.ask("missing.", dns.TypeA)
	assert.Equal(t, dns.RcodeNameError, resp.Rcode)
	resp = a.ask("missing.", dns.TypeA)
	assert.Equal(t, dns.RcodeNameError, resp.Rcode, "negative answers are cached too")
	assert.Equal(t, before+1, live.queries.Load())

	resp = a.ask("big.", dns.TypeA)
	assert.Equal(t, []string{"192.0.2.1"}, addrs(resp), "a truncated upstream answer is retried over TCP")

	// Our own zones are never forwarded.
	assert.True(t, a.ask("api.ybj.internal.", dns.TypeA).Authoritative)

	st := s.Status().Stats
	assert.Equal(t, uint64(2), st.CacheHits)
	// Queries are counted just after their answer is sent: wait for the last one.
	got := map[string]float64{}
	require.Eventually(t, func() bool {
		families, err := reg.Gather()
		require.NoError(t, err)
		clear(got)
		for _, f := range families {
			for _, m := range f.Metric {
				if m.Counter != nil {
					key := f.GetName()
					for _, l := range m.Label {
						key += "," + l.GetName() + "=" + l.GetValue()
					}
					got[key] = m.Counter.GetValue()
				}
			}
		}
		return got["dnsctl_queries_total,rcode=NOERROR,type=A"] == 5
	}, 2*time.Second, 5*time.Millisecond)
	assert.Equal(t, 2.0, got["dnsctl_cache_hits_total"])
	assert.Equal(t, 5.0, got["dnsctl_queries_total,rcode=NOERROR,type=A"])
	assert.Equal(t, 2.0, got["dnsctl_queries_total,rcode=NXDOMAIN,type=A"])
	assert.Equal(t, 1.0, got["dnsctl_upstream_requests_total,result=error,upstream="+s.fwd.upstreams[0]])
}

func TestForwardingAllUpstreamsFail(t *testing.T) {
	refusing := startUpstream(t, "192.0.2.1")
	refusing.rcode.Store(dns.RcodeRefused)
	s := startServer(t, Config{
		Forwarders:     []string{deadUpstream(t), refusing.addr},
		ForwardTimeout: Duration(100 * time.Millisecond),
	})
	resp := newAsker(t, s.Addr(), "").ask("example.org.", dns.TypeA)
	assert.Equal(t, dns.RcodeServerFailure, resp.Rcode)

	_, err := s.fwd.exchange(context.Background(), dns.Question{Name: "example.org.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	require.ErrorIs(t, err, ErrNoUpstream)
	assert.Contains(t, err.Error(), refusing.addr)
}
