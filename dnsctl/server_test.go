package dnsctl

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/shuanghuo/shuanghuo/internal/testlog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAuthoritativeAnswers(t *testing.T) {
	s := startServer(t, Config{Center: "a", Views: testViews(), Zones: []Zone{testZone(), hospZone(), reverseZone()}})
	a := newAsker(t, s.Addr(), "127.0.0.1")
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		answer []string
		soaNS  bool // the SOA is in the authority section
	}{
		{"A per center, active a", "api.ybj.internal.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.1.0.10", "A 10.1.0.11"}, false},
		{"case insensitive", "API.Ybj.Internal.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.1.0.10", "A 10.1.0.11"}, false},
		{"AAAA", "api.ybj.internal.", dns.TypeAAAA, dns.RcodeSuccess, []string{"AAAA fd00::10"}, false},
		{"CNAME chain", "www.ybj.internal.", dns.TypeA, dns.RcodeSuccess,
			[]string{"A 10.1.0.10", "A 10.1.0.11", "CNAME api.ybj.internal.", "CNAME web.ybj.internal."}, false},
		{"CNAME chain into another of our zones", "other.ybj.internal.", dns.TypeA, dns.RcodeSuccess,
			[]string{"A 10.1.1.1", "CNAME db.hosp.internal."}, false},
		{"CNAME asked for itself", "www.ybj.internal.", dns.TypeCNAME, dns.RcodeSuccess, []string{"CNAME web.ybj.internal."}, false},
		{"CNAME out of our zones", "ext.ybj.internal.", dns.TypeA, dns.RcodeSuccess, []string{"CNAME example.org."}, false},
		{"CNAME to a missing name", "gone.ybj.internal.", dns.TypeA, dns.RcodeNameError, []string{"CNAME nothing.ybj.internal."}, true},
		{"CNAME to NODATA", "www.ybj.internal.", dns.TypeMX, dns.RcodeSuccess,
			[]string{"CNAME api.ybj.internal.", "CNAME web.ybj.internal."}, true},
		{"CNAME loop ends", "loop1.ybj.internal.", dns.TypeA, dns.RcodeSuccess,
			[]string{"CNAME loop1.ybj.internal.", "CNAME loop1.ybj.internal.", "CNAME loop1.ybj.internal.", "CNAME loop1.ybj.internal.",
				"CNAME loop2.ybj.internal.", "CNAME loop2.ybj.internal.", "CNAME loop2.ybj.internal.", "CNAME loop2.ybj.internal."}, false},
		{"NXDOMAIN", "nope.ybj.internal.", dns.TypeA, dns.RcodeNameError, nil, true},
		{"NODATA", "mail.ybj.internal.", dns.TypeAAAA, dns.RcodeSuccess, nil, true},
		{"empty non-terminal is NODATA", "ent.ybj.internal.", dns.TypeA, dns.RcodeSuccess, nil, true},
		{"below an empty non-terminal", "leaf.ent.ybj.internal.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.0.0.99"}, false},
		{"SRV", "_sip._tcp.ybj.internal.", dns.TypeSRV, dns.RcodeSuccess, []string{"SRV 0 5 5060 api.ybj.internal."}, false},
		{"MX", "ybj.internal.", dns.TypeMX, dns.RcodeSuccess, []string{"MX 10 mail.ybj.internal."}, false},
		{"TXT", "txt.ybj.internal.", dns.TypeTXT, dns.RcodeSuccess, []string{`TXT "hello world"`}, false},
		{"NS", "ybj.internal.", dns.TypeNS, dns.RcodeSuccess, []string{"NS ns1.ybj.internal."}, false},
		{"SOA", "ybj.internal.", dns.TypeSOA, dns.RcodeSuccess,
			[]string{"SOA ns1.ybj.internal. hostmaster.ybj.internal. 1 60 10 1209600 30"}, false},
		{"PTR", "10.0.1.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"PTR api.ybj.internal."}, false},
		{"ANY is minimal (RFC 8482)", "api.ybj.internal.", dns.TypeANY, dns.RcodeSuccess, []string{"A 10.1.0.10", "A 10.1.0.11"}, false},
		{"outside our zones without forwarders", "example.org.", dns.TypeA, dns.RcodeRefused, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := a.ask(tc.qname, tc.qtype)
			assert.Equal(t, dns.RcodeToString[tc.rcode], dns.RcodeToString[resp.Rcode])
			assert.Equal(t, tc.answer, rdata(resp.Answer))
			if tc.soaNS {
				require.Len(t, resp.Ns, 1)
				soa := resp.Ns[0].(*dns.SOA)
				assert.Equal(t, uint32(30), soa.Hdr.Ttl, "negative TTL is min(SOA TTL, MINIMUM)")
			} else {
				assert.Empty(t, resp.Ns)
			}
			if tc.rcode != dns.RcodeRefused {
				assert.True(t, resp.Authoritative)
			}
		})
	}
}

func TestViews(t *testing.T) {
	s := startServer(t, Config{Center: "a", Views: testViews(), Zones: []Zone{testZone()}})
	for _, tc := range []struct {
		source string
		want   []string
	}{
		{"127.0.0.1", []string{"10.1.0.20"}},
		{"127.0.0.2", []string{"10.2.0.20"}},
		{"127.0.0.3", []string{"10.1.0.20"}}, // outside every view: Config.Center
	} {
		resp := newAsker(t, s.Addr(), tc.source).ask("redis.ybj.internal.", dns.TypeA)
		assert.Equal(t, tc.want, addrs(resp), "client %s", tc.source)
		// A record set pinned to one center ignores views.
		resp = newAsker(t, s.Addr(), tc.source).ask("api.ybj.internal.", dns.TypeA)
		assert.Equal(t, []string{"10.1.0.10", "10.1.0.11"}, addrs(resp), "client %s", tc.source)
	}
}

func TestSetViewsSwapsSplitHorizon(t *testing.T) {
	s := startServer(t, Config{Center: "a", Zones: []Zone{testZone()}})
	ask := func(source string) []string {
		return addrs(newAsker(t, s.Addr(), source).ask("redis.ybj.internal.", dns.TypeA))
	}
	require.Equal(t, []string{"10.1.0.20"}, ask("127.0.0.2"), "no views: every client gets Config.Center's")

	err := s.SetViews(context.Background(), []View{{Name: "b", Center: "b", Networks: []string{"not-a-cidr"}}})
	var verr *ValidationError
	require.ErrorAs(t, err, &verr)
	require.Equal(t, "views[0].networks[0]", verr.Errors[0].Field)
	require.Empty(t, s.Views(), "a rejected change changes nothing")

	require.NoError(t, s.SetViews(context.Background(), testViews()))
	require.Equal(t, testViews(), s.Views())
	require.Equal(t, []string{"10.2.0.20"}, ask("127.0.0.2"))
	require.Equal(t, []string{"10.1.0.20"}, ask("127.0.0.1"))
}

func TestEDNSAndTruncation(t *testing.T) {
	s := startServer(t, Config{Zones: []Zone{testZone()}})
	a := newAsker(t, s.Addr(), "")

	t.Run("no EDNS: truncated over UDP, whole over TCP", func(t *testing.T) {
		m := new(dns.Msg)
		m.SetQuestion("big.ybj.internal.", dns.TypeTXT)
		udp := a.exchange(m, false)
		assert.True(t, udp.Truncated)
		udp.Compress = true
		assert.LessOrEqual(t, udp.Len(), 512)
		assert.Nil(t, udp.IsEdns0())
		tcp := a.exchange(m, true)
		assert.False(t, tcp.Truncated)
		assert.Len(t, tcp.Answer, 12)
	})
	t.Run("EDNS0 large buffer: whole over UDP, OPT echoed", func(t *testing.T) {
		m := new(dns.Msg)
		m.SetQuestion("big.ybj.internal.", dns.TypeTXT)
		m.SetEdns0(4096, false)
		resp := a.exchange(m, false)
		assert.False(t, resp.Truncated)
		assert.Len(t, resp.Answer, 12)
		opt := resp.IsEdns0()
		require.NotNil(t, opt)
		assert.Equal(t, uint16(1232), opt.UDPSize())
	})
	t.Run("EDNS0 small buffer: truncated", func(t *testing.T) {
		m := new(dns.Msg)
		m.SetQuestion("big.ybj.internal.", dns.TypeTXT)
		m.SetEdns0(512, false)
		resp := a.exchange(m, false)
		assert.True(t, resp.Truncated)
		assert.NotNil(t, resp.IsEdns0())
	})
	t.Run("unknown EDNS version: BADVERS", func(t *testing.T) {
		m := new(dns.Msg)
		m.SetQuestion("api.ybj.internal.", dns.TypeA)
		m.SetEdns0(1232, false)
		m.IsEdns0().SetVersion(1)
		resp := a.exchange(m, false)
		assert.Equal(t, dns.RcodeBadVers, resp.Rcode)
		assert.Empty(t, resp.Answer)
	})
	t.Run("CHAOS class refused", func(t *testing.T) {
		m := new(dns.Msg)
		m.SetQuestion("version.bind.", dns.TypeTXT)
		m.Question[0].Qclass = dns.ClassCHAOS
		assert.Equal(t, dns.RcodeRefused, a.exchange(m, false).Rcode)
	})
}

func TestQueryLogAndStatus(t *testing.T) {
	var buf testlog.Buffer
	s := startServer(t, Config{Zones: []Zone{testZone()}, QueryLog: true, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	a := newAsker(t, s.Addr(), "")
	a.ask("api.ybj.internal.", dns.TypeA)
	a.ask("nope.ybj.internal.", dns.TypeAAAA)
	// The log line and the count are written after the answer is sent.
	require.Eventually(t, func() bool {
		log := buf.String()
		return strings.Contains(log, "name=api.ybj.internal. type=A rcode=NOERROR source=auth") &&
			strings.Contains(log, "name=nope.ybj.internal. type=AAAA rcode=NXDOMAIN") &&
			s.Status().Stats.Queries == 2
	}, 2*time.Second, 5*time.Millisecond, "query log: %s", &buf)

	st := s.Status()
	assert.Equal(t, s.Addr(), st.UDPAddr)
	assert.Equal(t, st.UDPAddr, st.TCPAddr, "TCP follows the UDP port")
	assert.Len(t, st.Zones, 1)
}

// Without a Logger the server logs nothing, as every other package does, rather than
// writing to the process's default logger.
func TestNoLoggerLogsNothing(t *testing.T) {
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(prev)

	s, err := New(Config{UDPAddr: "127.0.0.1:0", QueryLog: true, Zones: []Zone{testZone()}})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, s.Start(ctx))
	m := new(dns.Msg)
	m.SetQuestion("api.ybj.internal.", dns.TypeA)
	_, err = dns.Exchange(m, s.Addr())
	require.NoError(t, err)
	require.NoError(t, s.Close(ctx))
	require.Empty(t, buf.String())
}
