package appsync_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/shuanghuo/shuanghuo/appsync"
	"github.com/shuanghuo/shuanghuo/appsync/appsynctest"
)

// BenchmarkApplyConfig applies b.N config changes of 10 apps from an
// in-memory feed to an in-memory sink: the engine's own cost per change
// (verify, validate, compare, write, save the state).
func BenchmarkApplyConfig(b *testing.B) {
	feed, sink := appsynctest.NewFeed(), appsynctest.NewSink()
	for i := range b.N {
		feed.Config("hx", fmt.Sprintf("app%d", i%10), map[string]any{
			"rev": i, "port": 8085, "env": map[string]any{"TZ": "Asia/Shanghai", "JAVA_OPTS": "-Xmx1g"},
			"datasource": map[string]any{"url": "jdbc:mysql://db.yb.internal:3306/yb", "pool": 20},
		})
	}
	e, err := appsync.New(appsync.Options{Sink: sink, StateStore: &appsync.MemoryStateStore{}, Key: testKey})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	b.ResetTimer()
	err = e.Start(context.Background(), appsync.TaskConfig{ID: "config", Kind: appsync.TaskKindConfig},
		appsync.TaskOptions{Source: feed.Source(testKey), ProjectMap: appsync.BindProject("hx", "hx")})
	if err != nil {
		b.Fatal(err)
	}
	for {
		s, _ := e.Status("config")
		if s.Cursor >= int64(b.N) {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	if n := sink.Calls(appsynctest.OpPutAppConfig); n != b.N {
		b.Fatalf("%d writes for %d changes", n, b.N)
	}
}

// BenchmarkArtifactStreaming copies a 64 MiB artifact over loopback HTTP,
// each iteration twice: a plain GET read with io.Copy, and
// HTTPSource.Artifact from a FeedHandler. It reports both throughputs and
// their ratio (httpsource/plain; 1 is as fast as a plain copy).
func BenchmarkArtifactStreaming(b *testing.B) {
	data := make([]byte, 64<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		_, _ = w.Write(data)
	}))
	defer plain.Close()
	feed := appsynctest.NewFeed()
	feed.Release("hx", "outpatient", "1.0", data)
	h, err := appsync.FeedHandler(feed, testKey)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	src, err := appsync.NewHTTPSource(appsync.HTTPSourceOptions{URL: srv.URL, Key: testKey})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var tPlain, tSource time.Duration
	b.SetBytes(int64(2 * len(data)))
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		resp, err := http.Get(plain.URL)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != int64(len(data)) {
			b.Fatalf("plain: %d bytes, %v", n, err)
		}
		resp.Body.Close()
		tPlain += time.Since(start)

		start = time.Now()
		rc, err := src.Artifact(ctx, "hx", "outpatient", "1.0")
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, rc); err != nil || n != int64(len(data)) {
			b.Fatalf("httpsource: %d bytes, %v", n, err)
		}
		rc.Close()
		tSource += time.Since(start)
	}
	mb := float64(b.N*len(data)) / 1e6
	b.ReportMetric(mb/tPlain.Seconds(), "plain-MB/s")
	b.ReportMetric(mb/tSource.Seconds(), "httpsource-MB/s")
	b.ReportMetric(tPlain.Seconds()/tSource.Seconds(), "ratio")
}
