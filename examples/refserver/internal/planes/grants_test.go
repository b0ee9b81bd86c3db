package planes

import (
	"maps"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
)

func TestGrantsListen(t *testing.T) {
	g := Grants{Listen: []string{"10.1.0.0/24", "127.0.0.1", "0.0.0.0/0", "::/0"}, Ports: []PortRange{{From: 8000, To: 8099}, {From: 443, To: 443}}}
	require.NoError(t, g.check())
	for addr, want := range map[string]bool{
		"10.1.0.7": true, "::ffff:10.1.0.7": true, "127.0.0.1": true, "192.168.1.1": true, "2001:db8::1": true,
		// Every interface by name only, not through a CIDR that holds it.
		"0.0.0.0": false, "::": false, "": false, "::ffff:0.0.0.0": false, "nonsense": false,
	} {
		assert.Equal(t, want, g.mayListen(addr), "%q", addr)
	}
	assert.True(t, Grants{Listen: []string{"0.0.0.0", "::"}}.mayListen(""), "both wildcards grant every interface")
	assert.False(t, Grants{Listen: []string{"0.0.0.0"}}.mayListen(""), "IPv4's alone does not")
	assert.False(t, Grants{}.mayListen("127.0.0.1"), "no grant, nowhere")
	for port, want := range map[int]bool{8000: true, 8099: true, 443: true, 8100: false, 80: false} {
		assert.Equal(t, want, g.mayUsePort(port), "%d", port)
	}
}

func TestGrantsCheck(t *testing.T) {
	g := Grants{Listen: []string{"10.0.0.1", "fe80::1%eth0", "host"}, Ports: []PortRange{{From: 9, To: 8}}, Zones: []string{"Sub.YBJ.internal", "a\u202e.internal."}}
	err := g.check()
	var inv api.InvalidSpec
	require.ErrorAs(t, err, &inv)
	assert.Equal(t, []string{"listen[1]", "listen[2]", "ports[0]", "zones[1]"}, slices.Sorted(maps.Keys(inv)))
	assert.Equal(t, "sub.ybj.internal.", g.Zones[0], "zones are kept canonical")
}

func TestLocalBackend(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.9.9.9": true, "::1": true, "::ffff:127.0.0.1": true, "0.0.0.0": true, "::": true,
		"0.1.2.3": true, "169.254.169.254": true, "fe80::1": true, "localhost": true, "LOCALHOST.": true, "db.localhost": true,
		"10.0.0.1": false, "2001:db8::1": false, "app.ybj.internal": false, "localhost.example": false,
	} {
		assert.Equal(t, want, localBackend(host), "%q", host)
	}
}
