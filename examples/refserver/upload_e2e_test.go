package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/center"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
	"github.com/shuanghuo/shuanghuo/internal/testlog"
)

// uploadRig is a center logging into log, with a pushed app of a team to upload versions of.
type uploadRig struct {
	c       *center.Center
	log     *testlog.Buffer
	dir     string
	path    string // the app's versions path
	token   string
	stopped chan error
}

func newUploadRig(t *testing.T, with func(*config.Config)) *uploadRig {
	ctx, cancel := context.WithCancel(context.Background())
	r := &uploadRig{log: &testlog.Buffer{}, dir: t.TempDir(), stopped: make(chan error, 1)}
	cfg := config.Default()
	cfg.Listen, cfg.DataDir = "127.0.0.1:0", r.dir
	if with != nil {
		with(&cfg)
	}
	admin := "shk_e2eupload0123456789abcdef"
	var err error
	r.c, err = center.Open(ctx, cfg, center.Options{AdminToken: admin,
		Logger: slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	require.NoError(t, err)
	go func() { r.stopped <- r.c.Serve(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-r.stopped) })
	root := rest{t: t, base: r.c.URL(), token: admin}
	var team, project struct{ ID string }
	var tok struct{ Secret string }
	root.ok(201, "POST", "/api/v1/teams", map[string]string{"name": "uploader"}, &team)
	root.ok(201, "POST", "/api/v1/projects", map[string]string{"team_id": team.ID, "name": "p"}, &project)
	root.ok(201, "POST", "/api/v1/tokens", map[string]string{"team_id": team.ID, "name": "ci"}, &tok)
	api := rest{t: t, base: r.c.URL(), token: tok.Secret}
	var app struct{ ID string }
	api.ok(201, "POST", "/api/v1/deploy/apps", map[string]any{"project_id": project.ID, "spec": map[string]any{"name": "a", "kind": "executable"}}, &app)
	api.ok(200, "POST", "/api/v1/deploy/apps/"+app.ID+"/push", nil, nil)
	r.path, r.token = "/api/v1/deploy/apps/"+app.ID+"/versions/", tok.Secret
	return r
}

// startUpload sends an upload's headers, announcing size bytes, on a connection of its own.
func (r *uploadRig) startUpload(t *testing.T, version string, size int) net.Conn {
	conn, err := net.Dial("tcp", strings.TrimPrefix(r.c.URL(), "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "PUT %s%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/octet-stream\r\n"+
		"X-Checksum-Sha256: sha256:%s\r\nContent-Length: %d\r\n\r\n", r.path, version, r.token, strings.Repeat("0", 64), size)
	return conn
}

// artifacts lists what the artifact store holds, finished or not.
func (r *uploadRig) artifacts(t *testing.T) []string {
	var names []string
	for _, sub := range []string{"sha256", "tmp"} {
		entries, err := os.ReadDir(filepath.Join(r.dir, "deploy", "artifacts", sub))
		require.NoError(t, err)
		for _, e := range entries {
			names = append(names, sub+"/"+e.Name())
		}
	}
	return names
}

// A client that goes away in the middle of an upload is the client's doing: logged as such,
// not as an error of the server, and nothing is kept.
func TestUploadAbortedByTheClientIsNoServerError(t *testing.T) {
	r := newUploadRig(t, nil)
	conn := r.startUpload(t, "v1", 1<<20)
	_, err := conn.Write(bytes.Repeat([]byte("x"), 4096))
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond)
	conn.Close()
	require.Eventually(t, func() bool { return strings.Contains(r.log.String(), "upload cut short by the client") },
		5*time.Second, 20*time.Millisecond, "the abort is logged as the client's:\n%s", r.log)
	for _, line := range strings.Split(r.log.String(), "\n") {
		require.NotContains(t, line, "level=ERROR", "a client's abort is logged as an error")
	}
	require.Empty(t, r.artifacts(t))
}

// An upload that trickles in (here a few bytes every 200ms, with at least 1 KiB a second
// required) is cut with 408 once a window passes without enough, and nothing is kept.
func TestSlowUploadIsCut(t *testing.T) {
	r := newUploadRig(t, func(cfg *config.Config) { cfg.UploadMinRate = config.Rate{Bytes: 1024, Window: time.Second} })
	conn := r.startUpload(t, "v1", 1<<20)
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if _, err := conn.Write([]byte("0123456789")); err != nil {
				return
			}
		}
	}()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "a slow upload is still held after %v", time.Since(start))
	defer resp.Body.Close()
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	require.Less(t, time.Since(start), 3*time.Second)
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	require.Contains(t, body.String(), `"code":"request_timeout"`)
	require.Empty(t, r.artifacts(t))
	for _, line := range strings.Split(r.log.String(), "\n") {
		require.NotContains(t, line, "level=ERROR")
	}
}
