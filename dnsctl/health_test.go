package dnsctl

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHealthCheckedFailover(t *testing.T) {
	// Center b's target listens; center a's (same port, another loopback
	// address) does not, until the test starts it.
	up, err := net.Listen("tcp", "127.0.0.3:0")
	require.NoError(t, err)
	defer up.Close()
	port := up.Addr().(*net.TCPAddr).Port

	check := &HealthCheck{Port: port, Interval: Duration(50 * time.Millisecond), Timeout: Duration(200 * time.Millisecond)}
	s := startServer(t, Config{Zones: []Zone{{Origin: "ybj.internal.", RecordSets: []RecordSet{
		{Name: "app", Type: "A", Centers: map[string][]string{"a": {"127.0.0.4"}, "b": {"127.0.0.3"}}, Active: "a", HealthCheck: check},
		{Name: "plain", Type: "A", Centers: map[string][]string{"a": {"127.0.0.4"}, "b": {"127.0.0.3"}}, Active: "a"},
	}}}})
	a := newAsker(t, s.Addr(), "")

	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, []string{"127.0.0.3"}, addrs(a.ask("app.ybj.internal.", dns.TypeA)))
	}, 5*time.Second, 20*time.Millisecond, "a's only target fails: b answers")
	assert.Equal(t, []string{"127.0.0.4"}, addrs(a.ask("plain.ybj.internal.", dns.TypeA)), "failover is opt-in")
	assert.Equal(t, []string{"tcp://127.0.0.4:" + strconv.Itoa(port)}, s.Status().Unhealthy)

	back, err := net.Listen("tcp", net.JoinHostPort("127.0.0.4", strconv.Itoa(port)))
	require.NoError(t, err)
	defer back.Close()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, []string{"127.0.0.4"}, addrs(a.ask("app.ybj.internal.", dns.TypeA)))
	}, 5*time.Second, 20*time.Millisecond, "a recovers")
	assert.Empty(t, s.Status().Unhealthy)
}
