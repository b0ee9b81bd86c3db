package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/shuanghuo/shuanghuo/internal/testlog"
	"github.com/stretchr/testify/require"
)

// freeDNS returns host:port with a port that was free a moment ago for both UDP and TCP,
// as a DNS server listens on both (a free UDP port alone was taken for TCP once, under
// parallel test packages).
func freeDNS(t *testing.T, host string) string {
	for range 50 {
		c, err := net.ListenPacket("udp", host+":0")
		require.NoError(t, err)
		addr := c.LocalAddr().String()
		ln, err := net.Listen("tcp", addr)
		c.Close()
		if err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatalf("no port on %s free for both UDP and TCP", host)
	return ""
}

// lookup asks server for name's A record and returns the first address, or "".
func lookup(t *testing.T, server, name string) string {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	c := &dns.Client{Timeout: time.Second}
	in, _, err := c.Exchange(m, server)
	if err != nil || len(in.Answer) == 0 {
		return ""
	}
	for _, rr := range in.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String()
		}
	}
	return ""
}

func TestHelpAndBadConfig(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"-h"}, io.Discard, &stderr)
	require.Error(t, err)
	require.Contains(t, stderr.String(), "-data-dir")
	for _, sub := range []string{"refserver demo ", "refserver sign ", "refserver demo-app "} {
		require.Contains(t, stderr.String(), sub, "-h lists every subcommand")
	}

	err = run(context.Background(), []string{"-role", "boss", "-data-dir", t.TempDir()}, io.Discard, io.Discard)
	require.ErrorContains(t, err, `center.role: must be one of primary, standby, got "boss"`)
}

// The demo, end to end through the API: two centers, each with its own store, seeded with
// the seed's team and projects.
func TestDemoRunsTwoCenters(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, w := io.Pipe()
	done := make(chan error, 1)
	var logs testlog.Buffer
	go func() {
		done <- run(ctx, []string{"demo", "-a", "127.0.0.11:0", "-b", "127.0.0.12:0",
			"-a-dns", freeDNS(t, "127.0.0.11"), "-b-dns", freeDNS(t, "127.0.0.12"),
			"-apps", "127.0.0.21:0,127.0.0.22:0,127.0.0.23:0", "-lb-port", strconv.Itoa(freeTCP(t, "127.0.0.11")),
			"-redis-port", strconv.Itoa(freeTCP(t, "127.0.0.11")), "-gw-port", strconv.Itoa(freeTCP(t, "127.0.0.11")),
			"-deploy-apps", fmt.Sprintf("127.0.0.21:%[1]d,127.0.0.22:%[1]d,127.0.0.23:%[1]d", freeTCPOn(t, "127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.31", "127.0.0.32", "127.0.0.33")),
			"-deploy-lb-port", strconv.Itoa(freeTCP(t, "127.0.0.11"))}, w, &logs)
		w.Close()
	}()
	type seen struct{ url, dns, balancer, admin, team string }
	var centers []seen
	api := regexp.MustCompile(`API:\s+(\S+)/api/v1`)
	dnsAddr := regexp.MustCompile(`DNS:\s+(\S+)`)
	balancer := regexp.MustCompile(`balancer:\s+(\S+)`)
	tok := regexp.MustCompile(`(admin|team) token:\s+(shk_\S+)`)
	// The key moment's commands, as the banner prints them.
	var stopURL, statusURL, deployedURL string
	stopLine := regexp.MustCompile(`curl -X POST .* (\S+/instances/app-1/stop)`)
	statusLine := regexp.MustCompile(`curl -H .* (\S+/api/v1/balancers/\S+/status)`)
	keyMoment := regexp.MustCompile(`^\s+curl (http://\S+)\s+# "server" names`)
	sc := bufio.NewScanner(out)
	// The banner's last section is DR's.
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "DR") {
		line := sc.Text()
		if m := stopLine.FindStringSubmatch(line); m != nil {
			stopURL = m[1]
		}
		if m := statusLine.FindStringSubmatch(line); m != nil {
			statusURL = m[1]
		}
		if m := keyMoment.FindStringSubmatch(line); m != nil {
			deployedURL = m[1]
		}
		if len(centers) == 2 && centers[1].team != "" {
			continue
		}
		if m := api.FindStringSubmatch(line); m != nil {
			centers = append(centers, seen{url: m[1]})
		}
		if m := balancer.FindStringSubmatch(line); m != nil {
			centers[len(centers)-1].balancer = m[1]
		}
		if m := dnsAddr.FindStringSubmatch(line); m != nil {
			centers[len(centers)-1].dns = m[1]
		}
		if m := tok.FindStringSubmatch(line); m != nil {
			if m[1] == "admin" {
				centers[len(centers)-1].admin = m[2]
			} else {
				centers[len(centers)-1].team = m[2]
			}
		}
	}
	go io.Copy(io.Discard, out)
	// A newcomer's first start says nothing alarming: the centers start in an order in which
	// nothing fails that is not usual at a start.
	require.NotRegexp(t, `level=(WARN|ERROR)`, logs.String(), "the demo's start logs warnings")
	require.Len(t, centers, 2)
	require.NotEmpty(t, stopURL, "the banner shows the key moment")
	require.NotEmpty(t, statusURL, "the banner shows the key moment")
	require.NotEmpty(t, deployedURL, "the banner shows the key moment")
	require.True(t, strings.HasPrefix(centers[0].url, "http://127.0.0.11:"))
	require.True(t, strings.HasPrefix(centers[1].url, "http://127.0.0.12:"))

	get := func(url, token string) (int, string) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for i, c := range centers {
		status, body := get(c.url+"/api/v1/projects", c.team)
		require.Equal(t, 200, status, body)
		var list struct{ Items []struct{ Name string } }
		require.NoError(t, json.Unmarshal([]byte(body), &list))
		require.ElementsMatch(t, []string{"核心经办", "公共服务"}, []string{list.Items[0].Name, list.Items[1].Name})
		status, body = get(c.url+"/api/v1/center", c.admin)
		require.Equal(t, 200, status)
		require.Contains(t, body, []string{`"role":"primary"`, `"role":"standby"`}[i])
	}
	status, _ := get(centers[1].url+"/api/v1/projects", centers[0].team)
	require.Equal(t, 401, status, "each center has its own store and tokens")

	// With Redis on the machine (CI installs it), the DR group pairs A's Redis with B's.
	if defaultRedis() != "" {
		status, body := get(centers[0].url+"/api/v1/dr/groups", centers[0].admin)
		require.Equal(t, 200, status)
		var groups struct{ Items []struct{ ID string } }
		require.NoError(t, json.Unmarshal([]byte(body), &groups))
		require.Len(t, groups.Items, 1)
		status, body = get(centers[0].url+"/api/v1/dr/groups/"+groups.Items[0].ID+"/status", centers[0].admin)
		require.Equal(t, 200, status, body)
		require.Contains(t, body, `"state":"in-sync"`)
	} else if os.Getenv("CI") == "true" {
		t.Fatal("no Redis server binary: CI installs redis-tools (scripts/images)")
	}

	// Each center's balancer serves the outpatient app.
	for _, c := range centers {
		resp, err := http.Get(c.balancer)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, c.balancer)
		require.Contains(t, string(body), `"result":"settled"`)
	}

	// B has A's outpatient app, created and released there by appsync.
	status, appList := get(centers[1].url+"/api/v1/deploy/apps", centers[1].team)
	require.Equal(t, 200, status, appList)
	var apps struct{ Items []struct{ ID, Name string } }
	require.NoError(t, json.Unmarshal([]byte(appList), &apps))
	require.Len(t, apps.Items, 1)
	status, appStatus := get(centers[1].url+"/api/v1/deploy/apps/"+apps.Items[0].ID+"/status", centers[1].team)
	require.Equal(t, 200, status, appStatus)
	require.Contains(t, appStatus, `"current":"v1"`)

	// DNS: A serves the zone, B holds a transferred copy; a switch on A moves both.
	require.Equal(t, "127.0.0.11", lookup(t, centers[0].dns, "api.ybj.internal."))
	require.Eventually(t, func() bool { return lookup(t, centers[1].dns, "api.ybj.internal.") == "127.0.0.11" }, 10*time.Second, 50*time.Millisecond)
	req, _ := http.NewRequest("POST", centers[0].url+"/api/v1/zones/switch", strings.NewReader(`{"to":"b"}`))
	req.Header.Set("Authorization", "Bearer "+centers[0].admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, string(body))
	require.Contains(t, string(body), `"record_sets":2`)
	require.Equal(t, "127.0.0.12", lookup(t, centers[0].dns, "api.ybj.internal."), "A answers B's address at once")
	require.Eventually(t, func() bool { return lookup(t, centers[1].dns, "api.ybj.internal.") == "127.0.0.12" }, 10*time.Second, 50*time.Millisecond, "B's copy follows by NOTIFY")
	status, audit := get(centers[0].url+"/api/v1/audit?kind=zone", centers[0].admin)
	require.Equal(t, 200, status)
	require.Contains(t, audit, `"action":"switch"`, "the switch is in the audit log")

	// The seed's key moment, with the banner's commands: the working servers (deployed
	// instances, real processes) are stopped one by one, the monitor shows them out, the
	// standby takes over, and a working server started again takes the traffic back.
	post := func(url string) {
		req, _ := http.NewRequest("POST", url, nil)
		req.Header.Set("Authorization", "Bearer "+centers[0].team)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, "POST %s: %s", url, body)
	}
	answering := func() []string {
		seen := map[string]int{}
		for range 12 {
			resp, err := http.Get(deployedURL)
			require.NoError(t, err)
			var a struct{ Server string }
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&a))
			resp.Body.Close()
			require.Equal(t, 200, resp.StatusCode)
			host, _, _ := strings.Cut(a.Server, ":")
			seen[host]++
		}
		return keys(seen)
	}
	states := func() map[string]string {
		status, body := get(statusURL, centers[0].team)
		require.Equal(t, 200, status, body)
		var st balancerStatus
		require.NoError(t, json.Unmarshal([]byte(body), &st))
		out := map[string]string{}
		for _, s := range st.Groups[0].Servers {
			out[s.Name] = s.State
		}
		return out
	}
	require.ElementsMatch(t, []string{"127.0.0.21", "127.0.0.22"}, answering(), "the working servers answer, the standby does not")
	post(stopURL)
	require.NotEqual(t, "up", states()["app-1"], "the monitor shows app-1 out")
	require.Equal(t, []string{"127.0.0.22"}, answering())
	post(strings.Replace(stopURL, "app-1", "app-2", 1))
	require.NotEqual(t, "up", states()["app-2"], "the monitor shows app-2 out")
	require.Equal(t, []string{"127.0.0.23"}, answering(), "the standby takes over")
	post(strings.Replace(stopURL, "/stop", "/start", 1))
	require.Equal(t, "up", states()["app-1"])
	require.Equal(t, []string{"127.0.0.21"}, answering(), "app-1 takes the traffic back from the standby")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not stop")
	}
}
