package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHelpAndBadConfig(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"-h"}, io.Discard, &stderr)
	require.Error(t, err)
	require.Contains(t, stderr.String(), "-data-dir")

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
	go func() {
		done <- run(ctx, []string{"demo", "-a", "127.0.0.11:0", "-b", "127.0.0.12:0"}, w, io.Discard)
		w.Close()
	}()
	type seen struct{ url, admin, team string }
	var centers []seen
	api := regexp.MustCompile(`API:\s+(\S+)/api/v1`)
	tok := regexp.MustCompile(`(admin|team) token:\s+(shk_\S+)`)
	sc := bufio.NewScanner(out)
	for sc.Scan() && (len(centers) < 2 || centers[1].team == "") {
		line := sc.Text()
		if m := api.FindStringSubmatch(line); m != nil {
			centers = append(centers, seen{url: m[1]})
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
	require.Len(t, centers, 2)
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

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not stop")
	}
}
