package dnsctl

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDig checks answers with ISC dig (Debian package bind9-dnsutils). It skips
// where dig is missing, except under CI=true, where missing dig is a failure.
func TestDig(t *testing.T) {
	dig, err := exec.LookPath("dig")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dig not found; CI installs it from the Debian package bind9-dnsutils")
		}
		t.Skip("dig not found (Debian package bind9-dnsutils)")
	}
	secAddr := freeAddr(t, "127.0.0.2")
	primary := startServer(t, Config{
		Center: "a", Views: testViews(), Zones: []Zone{testZone()},
		Secondaries: []Secondary{{Addr: secAddr}}, // unsigned, by address
	})
	host, port, err := net.SplitHostPort(primary.Addr())
	require.NoError(t, err)
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		args = append([]string{"@" + host, "-p", port, "+time=2", "+tries=1"}, args...)
		out, err := exec.CommandContext(ctx, dig, args...).CombinedOutput()
		require.NoError(t, err, "dig %v: %s", args, out)
		return string(out)
	}
	short := func(args ...string) []string {
		return strings.Fields(run(append(args, "+short")...))
	}

	assert.Equal(t, []string{"10.1.0.10", "10.1.0.11"}, short("api.ybj.internal", "A"))
	assert.Equal(t, []string{"10.2.0.20"}, short("-b", "127.0.0.2", "redis.ybj.internal", "A"), "view of center b")
	assert.Equal(t, []string{"web.ybj.internal.", "api.ybj.internal.", "10.1.0.10", "10.1.0.11"}, short("www.ybj.internal", "A"))
	assert.Contains(t, run("nope.ybj.internal", "A"), "status: NXDOMAIN")
	nodata := run("mail.ybj.internal", "AAAA")
	assert.Contains(t, nodata, "status: NOERROR")
	assert.Contains(t, nodata, "ANSWER: 0, AUTHORITY: 1")
	// dig retries a truncated UDP answer over TCP by itself.
	big := run("+noedns", "big.ybj.internal", "TXT")
	assert.Contains(t, big, "Truncated, retrying in TCP mode")
	assert.Contains(t, big, "ANSWER: 12")
	assert.Contains(t, run("+ignore", "+noedns", "big.ybj.internal", "TXT"), "flags: qr aa tc")
	assert.Contains(t, run("+edns=0", "+bufsize=4096", "big.ybj.internal", "TXT"), "udp: 1232")

	axfr := run("-b", "127.0.0.2", "ybj.internal", "AXFR")
	assert.Contains(t, axfr, "api.ybj.internal.\t300\tIN\tA\t10.1.0.10")
	assert.Contains(t, run("ybj.internal", "AXFR"), "Transfer failed", "not a secondary's address")
	_, err = primary.ApplyChanges(context.Background(), "ybj.internal.", []Change{{Op: OpAdd, Set: RecordSet{Name: "new", Type: "A", Data: []string{"10.9.9.9"}}}})
	require.NoError(t, err)
	ixfr := run("-b", "127.0.0.2", "ybj.internal", "IXFR=1")
	assert.Contains(t, ixfr, "new.ybj.internal.\t300\tIN\tA\t10.9.9.9")
	assert.Equal(t, 4, strings.Count(ixfr, "\tSOA\t"), "incremental: new SOA, old SOA, new SOA, added record, new SOA")
}
