package appsync_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/shuanghuo/shuanghuo/appsync"
	"github.com/shuanghuo/shuanghuo/appsync/appsynctest"
)

// Version sync and config sync of project hx (核心经办) from center A to
// center B. In-memory fakes stand in for A's feed and B's platform; the
// reference server uses an HTTPSource and a Sink over its deploy manager.
func Example() {
	ctx := context.Background()
	key := []byte("a key the two centers share, 32+ bytes")
	a := appsynctest.NewFeed() // center A
	b := appsynctest.NewSink() // center B
	// B has the app already, with its own balancer.
	b.SetConfig("hx", "outpatient", map[string]any{"port": 8086, "balancer": "lb-b"})

	e, err := appsync.New(appsync.Options{Sink: b, StateStore: &appsync.MemoryStateStore{}, Key: key})
	if err != nil {
		panic(err)
	}
	defer e.Close()
	binding := appsync.TaskOptions{Source: a.Source(key), ProjectMap: appsync.BindProject("hx", "hx")}
	tasks := []appsync.TaskConfig{
		{ID: "hx-versions", Kind: appsync.TaskKindVersion,
			Version: appsync.VersionPolicy{Mode: appsync.ModeRelease, Nodes: map[string]string{"a1": "b1"}}},
		{ID: "hx-config", Kind: appsync.TaskKindConfig,
			Config: appsync.ConfigPolicy{Exclude: []string{"balancer"}, SourceRanges: []string{"10.1.0.0/16"}}},
	}
	for _, t := range tasks {
		if err := e.Start(ctx, t, binding); err != nil {
			panic(err)
		}
	}

	a.Release("hx", "outpatient", "2.0", []byte("outpatient-2.0.jar"), "a1")
	a.Config("hx", "outpatient", map[string]any{"port": 8086, "balancer": "lb-a"}) // the same in B
	a.Config("hx", "outpatient", map[string]any{"port": 8087, "balancer": "lb-a"})
	a.Config("hx", "outpatient", map[string]any{"port": 8087, "redis": "10.1.0.5:6379"})

	for _, t := range tasks {
		for s, _ := e.Status(t.ID); s.Cursor < 4 && s.State != appsync.StateConflict; s, _ = e.Status(t.ID) {
			time.Sleep(time.Millisecond)
		}
	}
	v, nodes := b.Released("hx", "outpatient")
	cfg, _ := b.Config("hx", "outpatient")
	fmt.Println("released in B:", v, nodes)
	fmt.Println("config in B:", string(cfg))
	s, _ := e.Status("hx-config")
	fmt.Println("config task:", s.State, s.Conflicts[0].Reason, s.Conflicts[0].Flagged)
	// Output:
	// released in B: 2.0 [b1]
	// config in B: {"balancer":"lb-b","port":8087}
	// config task: conflict center-specific [{redis 10.1.0.5:6379}]
}

// Center A serves its feed; center B reads it with an HTTPSource.
func ExampleFeedHandler() {
	key := []byte("a key the two centers share, 32+ bytes")
	feed := appsynctest.NewFeed()
	feed.Release("hx", "outpatient", "2.0", []byte("outpatient-2.0.jar"))

	h, err := appsync.FeedHandler(feed, key)
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/sync/feed/", http.StripPrefix("/api/v1/sync/feed", h))
	a := httptest.NewServer(mux) // wrap h with authentication in a real server
	defer a.Close()

	src, err := appsync.NewHTTPSource(appsync.HTTPSourceOptions{URL: a.URL + "/api/v1/sync/feed/", Key: key})
	if err != nil {
		panic(err)
	}
	page, err := src.Changes(context.Background(), 0, 100, 5*time.Second)
	if err != nil {
		panic(err)
	}
	c := page.Changes[0]
	fmt.Println(c.Seq, c.Kind, c.Project, c.App, c.Version, appsync.Verify(key, &c))
	rc, err := src.Artifact(context.Background(), c.Project, c.App, c.Version)
	if err != nil {
		panic(err)
	}
	defer rc.Close()
	body, _ := io.ReadAll(rc)
	fmt.Println(string(body))
	// Output:
	// 1 release hx outpatient 2.0 <nil>
	// outpatient-2.0.jar
}

// Changes are signed by the source center and verified by the target.
func ExampleSign() {
	key := []byte("a key the two centers share, 32+ bytes")
	c := appsync.Change{
		Seq: 1, Time: time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC), Kind: appsync.KindConfig,
		Project: "hx", App: "outpatient", Config: []byte(`{"port": 8085}`),
	}
	appsync.Sign(key, &c)
	fmt.Println(appsync.Verify(key, &c))
	c.Config = []byte(`{"port": 8086}`)
	fmt.Println(appsync.Verify(key, &c))
	// Output:
	// <nil>
	// appsync: change forged or corrupted (bad MAC): change 1: MAC does not match
}
