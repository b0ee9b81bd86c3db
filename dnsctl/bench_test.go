package dnsctl

import (
	"net"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// udpRecorder is a recorder that looks like a UDP client.
type udpRecorder struct{ recorder }

func (r *udpRecorder) RemoteAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}
}
func (r *udpRecorder) Write(b []byte) (int, error) {
	return len(b), nil
}

// BenchmarkServeDNS measures the answer path without the network: the part of
// a query's cost this package controls.
func BenchmarkServeDNS(b *testing.B) {
	for _, tc := range []struct {
		name  string
		qname string
		qtype uint16
	}{
		{"static", "mail.ybj.internal.", dns.TypeA},
		{"centers", "api.ybj.internal.", dns.TypeA},
		{"view", "redis.ybj.internal.", dns.TypeA},
		{"cname-chain", "www.ybj.internal.", dns.TypeA},
		{"nxdomain", "nope.ybj.internal.", dns.TypeA},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s, err := New(Config{Logger: quietLogger(), Center: "a", Views: testViews(), Zones: []Zone{testZone()}, Registerer: prometheus.NewRegistry()})
			require.NoError(b, err)
			h := handler{s}
			r := new(dns.Msg)
			r.SetQuestion(tc.qname, tc.qtype)
			r.SetEdns0(1232, false)
			w := &udpRecorder{}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeDNS(w, r)
			}
		})
	}
}
