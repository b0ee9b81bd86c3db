package dnsctl

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// bigTXT is a record set whose answer does not fit 512 bytes.
func bigTXT() []string {
	var out []string
	for i := range 12 {
		out = append(out, fmt.Sprintf(`"%02d-%s"`, i, strings.Repeat("x", 60)))
	}
	return out
}

func testZone() Zone {
	return Zone{
		Origin: "ybj.internal",
		RecordSets: []RecordSet{
			{Name: "@", Type: "NS", Data: []string{"ns1"}},
			{Name: "ns1", Type: "A", Data: []string{"10.0.0.53"}},
			{Name: "api", Type: "A", Centers: map[string][]string{"a": {"10.1.0.10", "10.1.0.11"}, "b": {"10.2.0.10", "10.2.0.11"}}, Active: "a"},
			{Name: "api", Type: "AAAA", Data: []string{"fd00::10"}},
			{Name: "www", Type: "CNAME", Data: []string{"web"}},
			{Name: "web", Type: "CNAME", Data: []string{"api"}},
			{Name: "ext", Type: "CNAME", Data: []string{"example.org."}},
			{Name: "gone", Type: "CNAME", Data: []string{"nothing"}},
			{Name: "loop1", Type: "CNAME", Data: []string{"loop2"}},
			{Name: "loop2", Type: "CNAME", Data: []string{"loop1"}},
			{Name: "other", Type: "CNAME", Data: []string{"db.hosp.internal."}},
			{Name: "redis", Type: "A", Centers: map[string][]string{"a": {"10.1.0.20"}, "b": {"10.2.0.20"}}, Active: AllCenters},
			{Name: "_sip._tcp", Type: "SRV", Data: []string{"0 5 5060 api"}},
			{Name: "@", Type: "MX", Data: []string{"10 mail"}},
			{Name: "mail", Type: "A", Data: []string{"10.0.0.25"}},
			{Name: "txt", Type: "TXT", Data: []string{`"hello world"`}},
			{Name: "big", Type: "TXT", Data: bigTXT()},
			{Name: "leaf.ent", Type: "A", Data: []string{"10.0.0.99"}},
		},
	}
}

func hospZone() Zone {
	return Zone{Origin: "hosp.internal.", RecordSets: []RecordSet{
		{Name: "db", Type: "A", Centers: map[string][]string{"a": {"10.1.1.1"}, "b": {"10.2.1.1"}}, Active: "a"},
	}}
}

func reverseZone() Zone {
	return Zone{Origin: "10.in-addr.arpa.", RecordSets: []RecordSet{
		{Name: "10.0.1.10.in-addr.arpa.", Type: "PTR", Data: []string{"api.ybj.internal."}},
	}}
}

func testViews() []View {
	return []View{
		{Name: "center-a", Center: "a", Networks: []string{"127.0.0.1/32"}},
		{Name: "center-b", Center: "b", Networks: []string{"127.0.0.2/32", "10.2.0.0/16"}},
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startServer starts a server on a free 127.0.0.1 port and closes it with the test.
func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.UDPAddr == "" {
		cfg.UDPAddr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	s, err := New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, s.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, s.Close(ctx))
	})
	return s
}

// asker sends queries from a chosen loopback source.
type asker struct {
	t      testing.TB
	server string
	udp    *dns.Client
	tcp    *dns.Client
}

func newAsker(t testing.TB, server, source string) *asker {
	a := &asker{t: t, server: server, udp: &dns.Client{Net: "udp", Timeout: 2 * time.Second}, tcp: &dns.Client{Net: "tcp", Timeout: 2 * time.Second}}
	if source != "" {
		ip := net.ParseIP(source)
		a.udp.Dialer = &net.Dialer{LocalAddr: &net.UDPAddr{IP: ip}, Timeout: 2 * time.Second}
		a.tcp.Dialer = &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 2 * time.Second}
	}
	return a
}

func (a *asker) exchange(m *dns.Msg, tcp bool) *dns.Msg {
	a.t.Helper()
	c := a.udp
	if tcp {
		c = a.tcp
	}
	resp, _, err := c.Exchange(m, a.server)
	require.NoError(a.t, err)
	return resp
}

func (a *asker) ask(name string, qtype uint16) *dns.Msg {
	a.t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return a.exchange(m, false)
}

// rdata renders a section as sorted "TYPE rdata" strings without owner and TTL.
func rdata(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		h := rr.Header()
		out = append(out, dns.TypeToString[h.Rrtype]+" "+strings.TrimPrefix(rr.String(), h.String()))
	}
	slices.Sort(out)
	return out
}

// addrs returns the A and AAAA addresses in an answer, sorted.
func addrs(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	slices.Sort(out)
	return out
}
