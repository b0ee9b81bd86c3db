package dr_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/dr"
	"github.com/shuanghuo/shuanghuo/dr/drtest"
)

// verifyOnly runs a plan of one verify step on urls and returns the finished run.
func verifyOnly(t *testing.T, r *rig, urls ...string) dr.Run {
	t.Helper()
	plan := dr.PlanConfig{Name: "verify", Steps: []dr.StepConfig{
		{Kind: dr.StepVerify, URLs: urls, Timeout: dr.Duration(time.Second)},
	}}
	return r.run(t, plan, dr.ModeSwitchover)
}

// A verify URL that redirects elsewhere has not answered: the probe does not follow it, so the
// place it points at (another service of the host, say) never gets a request.
func TestVerifyFollowsNoRedirect(t *testing.T) {
	r := newRig(t)
	var elsewhere atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(target.Close)
	redirect := httptest.NewServer(http.RedirectHandler(target.URL+"/admin", http.StatusFound))
	t.Cleanup(redirect.Close)

	run := verifyOnly(t, r, redirect.URL)
	require.Equal(t, dr.RunFailed, run.State)
	require.Zero(t, elsewhere.Load(), "the redirect was followed")
	require.Contains(t, run.Steps[0].Error, redirect.URL+": answered 302")
}

// What a probe of a closed port and of an open port that does not speak HTTP says is the same,
// so that a plan's run cannot tell which ports of a host are open.
func TestVerifyErrorsRevealNoPort(t *testing.T) {
	r := newRig(t)
	closed := "127.0.0.1:" + fmt.Sprint(freePort(t))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() { // an SSH server, as far as a client can tell
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
			_ = c.Close()
		}
	}()
	says := func(addr string) string {
		run := verifyOnly(t, r, "http://"+addr+"/healthz")
		require.Equal(t, dr.RunFailed, run.State)
		text := run.Steps[0].Error + "\n" + strings.Join(run.Steps[0].Output, "\n")
		for _, e := range run.Events {
			text += "\n" + e.Message
		}
		return strings.ReplaceAll(strings.ReplaceAll(text, run.ID, "RUN"), addr, "ADDR")
	}
	closedSays, openSays := says(closed), says(ln.Addr().String())
	require.Equal(t, closedSays, openSays)
	require.Contains(t, closedSays, "http://ADDR/healthz: unreachable")
}

// A service that answers an error is named by its status code alone.
func TestVerifySaysWhatAnswered(t *testing.T) {
	r := newRig(t)
	r.healthy.Store(false)
	run := verifyOnly(t, r, r.url)
	require.Equal(t, dr.RunFailed, run.State)
	require.Contains(t, run.Steps[0].Error, r.url+": answered 503")
	require.NotContains(t, run.Steps[0].Error, "Service Unavailable", "the reason phrase is the service's text")
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// A probe's dialer knows which plan probes, so a control plane can hold each plan to what
// its owner may reach, by the address a name resolved to.
func TestVerifyDialerKnowsThePlan(t *testing.T) {
	var plans []string
	var mu sync.Mutex
	refuse := errors.New("not this plan's to reach")
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		plan, _ := dr.ProbePlan(ctx)
		mu.Lock()
		plans = append(plans, plan)
		mu.Unlock()
		return nil, refuse
	}}}
	m, err := dr.New(dr.Options{Drivers: map[dr.Kind]dr.DriverFunc{dr.KindRedis: (&drtest.Fakes{}).Open}, HTTPClient: client})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	run, err := m.Start(dr.PlanConfig{Name: "orders-to-b", Steps: []dr.StepConfig{
		{Kind: dr.StepVerify, URLs: []string{"http://127.0.0.1:9/"}, Timeout: dr.Duration(150 * time.Millisecond)},
	}}, dr.ModeSwitchover)
	require.NoError(t, err)
	run, err = m.Wait(t.Context(), run.ID)
	require.NoError(t, err)
	require.Equal(t, dr.RunFailed, run.State)
	require.Contains(t, run.Steps[0].Error, "http://127.0.0.1:9/: unreachable")
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, plans)
	for _, p := range plans {
		require.Equal(t, "orders-to-b", p)
	}
	_, ok := dr.ProbePlan(t.Context())
	require.False(t, ok)
}
