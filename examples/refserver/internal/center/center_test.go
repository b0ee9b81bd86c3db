package center

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/planes"
)

func testConfig(t *testing.T) config.Config {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}

func TestFirstStartPrintsTheAdminTokenOnce(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	var out bytes.Buffer
	c, err := Open(ctx, cfg, Options{Out: &out})
	require.NoError(t, err)
	line := out.String()
	require.Contains(t, line, "admin token (shown once")
	token := strings.TrimSpace(line[strings.LastIndex(line, " "):])

	stop, done := serve(t, c)
	req, _ := http.NewRequest("GET", c.URL()+"/api/v1/teams", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	stop()
	require.NoError(t, <-done)

	out.Reset()
	c, err = Open(ctx, cfg, Options{Out: &out})
	require.NoError(t, err)
	// Instead, one line says where it was and how to make one.
	again := out.String()
	require.NotContains(t, again, token, "the token is never printed again")
	require.Equal(t, 1, strings.Count(again, "\n"), again)
	require.Contains(t, again, "the admin token was shown at the first start")
	require.Contains(t, again, AdminTokenEnv)
	stop, done = serve(t, c)
	stop()
	require.NoError(t, <-done)
}

func TestAdminTokenFromEnvironment(t *testing.T) {
	_, err := Open(context.Background(), testConfig(t), Options{AdminToken: "short"})
	require.ErrorContains(t, err, AdminTokenEnv)

	token := "shk_0123456789abcdef0123"
	var out bytes.Buffer
	c, err := Open(context.Background(), testConfig(t), Options{AdminToken: token, Out: &out})
	require.NoError(t, err)
	require.Empty(t, out.String(), "a token given needs no hint")
	stop, done := serve(t, c)
	defer func() { stop(); <-done }()
	req, _ := http.NewRequest("GET", c.URL()+"/api/v1/audit", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
}

func TestInvalidConfigIsRefusedBeforeAnythingStarts(t *testing.T) {
	cfg := testConfig(t)
	cfg.Center.Role = "leader"
	_, err := Open(context.Background(), cfg, Options{})
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	require.Contains(t, cerr.Fields, "center.role")
}

// A request still arriving when shutdown begins is finished, not cut off.
func TestShutdownFinishesInFlightRequests(t *testing.T) {
	token := "shk_0123456789abcdef0123"
	var out bytes.Buffer
	c, err := Open(context.Background(), testConfig(t), Options{AdminToken: token, Out: &out})
	require.NoError(t, err)
	require.Empty(t, out.String(), "a token given needs no hint")
	stop, done := serve(t, c)

	body, feed := io.Pipe()
	req, _ := http.NewRequest("POST", c.URL()+"/api/v1/teams", body)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	got := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		got <- resp
	}()
	_, err = feed.Write([]byte(`{"name":`))
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond) // the handler is now reading the body
	stop()
	time.Sleep(100 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("the server stopped with a request in flight")
	default:
	}
	_, err = feed.Write([]byte(`"late team"}`))
	require.NoError(t, err)
	feed.Close()
	resp := <-got
	require.NotNil(t, resp)
	resp.Body.Close()
	require.Equal(t, 201, resp.StatusCode)
	require.NoError(t, <-done)
}

func serve(t *testing.T, c *Center) (stop func(), done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Serve(ctx) }()
	require.Eventually(t, func() bool {
		resp, err := http.Get(c.URL() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, 5*time.Second, 10*time.Millisecond)
	return cancel, errc
}

// Open failing at its last plane (a sync key from the environment that is not hex) stops
// what the earlier ones started: the API's port, the DNS server's ports and the store are
// free again, and the next start with a good key serves.
func TestOpenFailingLateReleasesWhatItStarted(t *testing.T) {
	cfg := testConfig(t)
	cfg.Listen = fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	cfg.DNS.Listen = fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp"))
	t.Setenv(planes.SyncKeyEnv, "not hex")
	_, err := Open(context.Background(), cfg, Options{AdminToken: "shk_0123456789abcdef0123"})
	require.ErrorContains(t, err, "center a: appsync: the sync key must be hex")

	l, err := net.Listen("tcp", cfg.Listen)
	require.NoError(t, err, "the API's port is free")
	l.Close()
	u, err := net.ListenPacket("udp", cfg.DNS.Listen)
	require.NoError(t, err, "the DNS server's UDP port is free")
	u.Close()
	l, err = net.Listen("tcp", cfg.DNS.Listen)
	require.NoError(t, err, "the DNS server's TCP port is free")
	l.Close()

	t.Setenv(planes.SyncKeyEnv, strings.Repeat("ab", 32))
	c, err := Open(context.Background(), cfg, Options{AdminToken: "shk_0123456789abcdef0123"})
	require.NoError(t, err)
	stop, done := serve(t, c)
	stop()
	require.NoError(t, <-done)
}
