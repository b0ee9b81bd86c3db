package appsync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shuanghuo/shuanghuo/appsync"
	"github.com/shuanghuo/shuanghuo/appsync/appsynctest"
)

// serveFeed serves feed under /feed/ behind a bearer token, as a reference
// server would.
func serveFeed(t *testing.T, feed appsync.Feed) *httptest.Server {
	t.Helper()
	h, err := appsync.FeedHandler(feed, testKey)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/feed/", http.StripPrefix("/feed", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func httpSource(t *testing.T, url, token string) *appsync.HTTPSource {
	t.Helper()
	src, err := appsync.NewHTTPSource(appsync.HTTPSourceOptions{URL: url, Token: token, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func TestHTTPSourceAgainstFeedHandler(t *testing.T) {
	r := newRig(t)
	srv := serveFeed(t, r.feed)
	src := httpSource(t, srv.URL+"/feed", "s3cret")
	e := r.engine(nil)
	ctx := context.Background()
	for _, cfg := range []appsync.TaskConfig{versionTask("versions"), configTask("config")} {
		cfg.RetryMin, cfg.RetryMax = appsync.Duration(time.Millisecond), appsync.Duration(5*time.Millisecond)
		if err := e.Start(ctx, cfg, appsync.TaskOptions{Source: src, ProjectMap: appsync.BindProject("hx", "hx-b")}); err != nil {
			t.Fatal(err)
		}
	}
	big := strings.Repeat("0123456789", 100_000)
	r.feed.Release("hx", "outpatient", "1.0", []byte(big), "a1")
	r.feed.Config("hx", "outpatient", map[string]any{"port": 8085, "note": "<&> 门诊"})
	waitCursor(t, e, "versions", 2)
	waitCursor(t, e, "config", 2)
	if v := r.sink.Versions("hx-b", "outpatient")["1.0"]; string(v.Content) != big {
		t.Fatalf("artifact of %d bytes", len(v.Content))
	}
	if cur, _ := r.sink.Released("hx-b", "outpatient"); cur != "1.0" {
		t.Fatalf("released %q", cur)
	}
	if got := configOf(t, r.sink, "outpatient"); got["note"] != "<&> 门诊" {
		t.Fatalf("config: %v", got)
	}
}

// Piece sums cross the transport: FeedHandler signs them, HTTPSource
// verifies them (and rejects them altered on the way), and a task copies
// the artifact checked by them.
func TestHTTPSourcePieces(t *testing.T) {
	r := newRig(t)
	r.feed.SetPieceSize(64 << 10)
	big := bytes.Repeat([]byte("0123456789"), 100_000) // 16 pieces, the last short
	sent := r.feed.Release("hx", "outpatient", "1.0", big)
	src := httpSource(t, serveFeed(t, r.feed).URL+"/feed", "s3cret")
	ctx := context.Background()
	p, err := src.Changes(ctx, 0, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Changes) != 1 || len(p.Rejected) != 0 {
		t.Fatalf("page: %+v", p)
	}
	c := p.Changes[0]
	if c.PieceSize != 64<<10 || len(c.Pieces) != 16*64 || c.Pieces != sent.Pieces {
		t.Fatalf("received pieces of %d: %q", c.PieceSize, c.Pieces)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}

	altered := c
	altered.Pieces = strings.Repeat("0", 64) + c.Pieces[64:]
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"changes": []appsync.Change{altered}, "head": 1})
	}))
	defer relay.Close()
	p, err = httpSource(t, relay.URL, "").Changes(ctx, 0, 10, 0)
	if err != nil || len(p.Changes) != 0 || len(p.Rejected) != 1 || !strings.Contains(p.Rejected[0].Error, "MAC") {
		t.Fatalf("altered pieces: %+v, %v", p, err)
	}

	e := r.engine(nil)
	if err := e.Start(ctx, versionTask("versions"), appsync.TaskOptions{Source: src, ProjectMap: appsync.BindProject("hx", "hx-b")}); err != nil {
		t.Fatal(err)
	}
	waitCursor(t, e, "versions", 1)
	if v := r.sink.Versions("hx-b", "outpatient")["1.0"]; !bytes.Equal(v.Content, big) || v.Pieces != sent.Pieces {
		t.Fatalf("version of %d bytes checked by %d piece sums", len(v.Content), len(v.Pieces)/64)
	}
}

// What a Feed counts as pending reaches the reader through the transport.
func TestHTTPSourcePending(t *testing.T) {
	r := newRig(t)
	r.feed.Config("hx", "a", map[string]any{"n": 1})
	srv := serveFeed(t, pendingFeed{r.feed, 7})
	src := httpSource(t, srv.URL+"/feed", "s3cret")
	page, err := src.Changes(context.Background(), 0, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if page.Pending == nil || *page.Pending != 7 || len(page.Changes) != 1 {
		t.Fatalf("page: pending %v, %d changes", page.Pending, len(page.Changes))
	}
}

type pendingFeed struct {
	appsync.Feed
	n int64
}

func (f pendingFeed) Changes(ctx context.Context, after int64, limit int, wait time.Duration) (appsync.Page, error) {
	page, err := f.Feed.Changes(ctx, after, limit, wait)
	page.Pending = &f.n
	return page, err
}

// Changes long-polls: a read waiting at the head gets the change appended
// while it waits.
func TestHTTPSourceLongPoll(t *testing.T) {
	feed := appsynctest.NewFeed()
	feed.Config("hx", "outpatient", map[string]any{"port": 1})
	src := httpSource(t, serveFeed(t, feed).URL+"/feed", "s3cret")
	got := make(chan appsync.Page, 1)
	go func() {
		p, err := src.Changes(context.Background(), 1, 10, 50*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- p
	}()
	waitFor(t, "the read to wait", func() bool { return feed.Calls("changes") == 1 })
	feed.Config("hx", "inpatient", map[string]any{"port": 2})
	p := <-got
	if len(p.Changes) != 1 || p.Changes[0].App != "inpatient" || p.Head != 2 {
		t.Fatalf("long-poll page: %+v", p)
	}
	if err := appsync.Verify(testKey, &p.Changes[0]); err != nil {
		t.Fatal(err)
	}
}

func TestHTTPSourceErrors(t *testing.T) {
	feed := appsynctest.NewFeed()
	srv := serveFeed(t, feed)
	ctx := context.Background()

	if _, err := httpSource(t, srv.URL+"/feed/", "wrong").Changes(ctx, 0, 10, 0); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("bad token: %v", err)
	}
	src := httpSource(t, srv.URL+"/feed/", "s3cret")
	if _, err := src.Artifact(ctx, "hx", "outpatient", "9.9"); !errors.Is(err, appsync.ErrNotFound) {
		t.Fatalf("unknown version: %v", err)
	}
	for _, bad := range []string{"after=-1", "limit=0", "limit=5000", "wait=2h", "wait=soon"} {
		resp, err := http.Get(srv.URL + "/feed/?" + bad)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s without token: %s", bad, resp.Status)
		}
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/feed/?"+bad, nil)
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error struct{ Code, Message string }
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || body.Error.Code != "bad_request" || body.Error.Message == "" {
			t.Fatalf("%s: %s %+v", bad, resp.Status, body)
		}
	}

	// Pages that break the protocol.
	for name, body := range map[string]string{
		"unknown field":    `{"changes":[],"head":0,"next":1}`,
		"trailing data":    `{"changes":[],"head":0} {}`,
		"not json":         `<html>`,
		"negative head":    `{"changes":[],"head":-1}`,
		"negative pending": `{"changes":[],"head":0,"pending":-1}`,
		"too large":        `{"changes":[],"head":0,"x":"` + strings.Repeat("x", 2000) + `"}`,
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) }))
		src, err := appsync.NewHTTPSource(appsync.HTTPSourceOptions{URL: srv.URL, Key: testKey, MaxPageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := src.Changes(ctx, 0, 10, 0); !errors.Is(err, appsync.ErrProtocol) {
			t.Errorf("%s: %v", name, err)
		}
		srv.Close()
	}
	if _, err := appsync.NewHTTPSource(appsync.HTTPSourceOptions{URL: "ftp://x", Key: testKey}); !errors.Is(err, appsync.ErrInvalid) {
		t.Fatalf("bad URL: %v", err)
	}
	if _, err := appsync.FeedHandler(feed, []byte("short")); !errors.Is(err, appsync.ErrInvalid) {
		t.Fatalf("short key: %v", err)
	}
}

// A forged change on the wire is rejected on receipt by HTTPSource, and the
// task holds at it: the change before it is applied, none after it.
func TestHTTPSourceRejectsForged(t *testing.T) {
	good := appsync.Change{Seq: 1, Time: time.Now(), Kind: appsync.KindConfig, Project: "hx", App: "a", Config: json.RawMessage(`{"n":1}`)}
	appsync.Sign(testKey, &good)
	forged := good
	forged.Seq, forged.App = 2, "b" // MAC of change 1
	good3 := good
	good3.Seq, good3.App = 3, "c"
	appsync.Sign(testKey, &good3)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
		changes := []appsync.Change{}
		for _, c := range []appsync.Change{good, forged, good3} {
			if c.Seq > after {
				changes = append(changes, c)
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"changes": changes, "head": 3})
	}))
	defer srv.Close()
	src := httpSource(t, srv.URL, "")
	p, err := src.Changes(context.Background(), 0, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Changes) != 2 || len(p.Rejected) != 1 || p.Rejected[0].Seq != 2 || !strings.Contains(p.Rejected[0].Error, "MAC") {
		t.Fatalf("page: %+v", p)
	}

	r := newRig(t)
	e := r.engine(nil)
	if err := e.Start(context.Background(), configTask("config"), appsync.TaskOptions{Source: src, ProjectMap: appsync.BindProject("hx", "hx-b")}); err != nil {
		t.Fatal(err)
	}
	s := waitFor2(t, e, "config", func(s appsync.Status) bool { return s.Retries >= 2 })
	if s.Applied != 1 || s.Cursor != 1 || s.State != appsync.StateRetrying || !strings.Contains(s.LastError, "MAC") {
		t.Fatalf("status: %+v", s)
	}
	for _, app := range []string{"b", "c"} {
		if _, ok := r.sink.Config("hx-b", app); ok {
			t.Fatalf("app %s was applied", app)
		}
	}
}

// A feed that redirects elsewhere is not followed: the token goes to the feed's own
// address only, and the redirect is an error naming its status.
func TestHTTPSourceFollowsNoRedirect(t *testing.T) {
	var hits, withToken atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("Authorization") != "" {
			withToken.Add(1)
		}
		http.NotFound(w, r)
	}))
	defer elsewhere.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.RequestURI(), http.StatusFound)
	}))
	defer redirector.Close()
	src := httpSource(t, redirector.URL+"/feed", "s3cret")
	_, err := src.Changes(context.Background(), 0, 10, 0)
	if hits.Load() != 0 {
		t.Fatalf("the redirect was followed: %d requests elsewhere, %d with the token", hits.Load(), withToken.Load())
	}
	if err == nil || !strings.Contains(err.Error(), "302") {
		t.Fatalf("a redirect is an error naming its status, got %v", err)
	}
	if _, err := src.Artifact(context.Background(), "hx", "app", "v1"); err == nil || hits.Load() != 0 {
		t.Fatalf("artifact through a redirect: %v, %d requests elsewhere", err, hits.Load())
	}
}
