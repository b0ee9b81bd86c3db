package logsvc_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/shuanghuo/shuanghuo/logsvc"
)

// Collect an application's log, joining a Java stack trace into one record, and ship the
// records to a Sink that prints them. A real sink sends them to a store and returns nil
// only once the store has them.
func Example() {
	dir, _ := os.MkdirTemp("", "logsvc-example")
	defer os.RemoveAll(dir)
	log := filepath.Join(dir, "bizc.log")
	_ = os.WriteFile(log, []byte("2026-12-07 22:00:00 INFO settle 2201 ok\n"+
		"2026-12-07 22:00:01 ERROR settle 2202 failed\n"+
		"java.io.IOException: connection reset\n"+
		"\tat cn.yb.Settle.run(Settle.java:42)\n"+
		"2026-12-07 22:00:02 DEBUG heartbeat\n"), 0o644)

	printed, n := make(chan struct{}), 0
	sink := logsvc.SinkFunc(func(ctx context.Context, records []logsvc.Record) error {
		for _, r := range records {
			fmt.Printf("[%s] %s\n", r.Labels["app"], r.Line)
		}
		if n += len(records); n == 2 {
			close(printed)
		}
		return nil
	})
	c, err := logsvc.New(logsvc.Config{
		Sources: []logsvc.Source{{
			Paths:     []string{filepath.Join(dir, "*.log")},
			Labels:    map[string]string{"app": "bizc"},
			Exclude:   []string{` DEBUG `},
			Multiline: &logsvc.Multiline{Start: `^\d{4}-\d{2}-\d{2}`, Timeout: logsvc.Duration(50 * time.Millisecond)},
		}},
		Labels:         map[string]string{"center": "a"},
		CheckpointPath: filepath.Join(dir, "checkpoint.json"),
	}, sink)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	<-printed
	_ = c.Close(ctx)
	// Output:
	// [bizc] 2026-12-07 22:00:00 INFO settle 2201 ok
	// [bizc] 2026-12-07 22:00:01 ERROR settle 2202 failed
	// java.io.IOException: connection reset
	// 	at cn.yb.Settle.run(Settle.java:42)
}
