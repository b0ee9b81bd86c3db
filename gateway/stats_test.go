package gateway_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/shuanghuo/shuanghuo/gateway"
)

// A row's latency histogram carries its bucket bounds, so that its JSON reads alone: le_ms
// holds the upper bound (ms) of each count but the last, which has none.
func TestStatsRowHasLatencyBounds(t *testing.T) {
	gw, err := gateway.New(gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]uint64, len(gateway.LatencyBounds)+1)
	counts[0], counts[len(counts)-1] = 3, 1
	minute := time.Now().Truncate(time.Minute)
	row := gateway.StatsRow{Time: minute, API: "门诊结算", Consumer: "h1", Calls: 4, Successes: 4,
		Latency: gateway.Latency{Counts: counts, SumMs: 20002}}
	if err := gw.RestoreStats(gateway.Minute, []gateway.StatsRow{row}); err != nil {
		t.Fatal(err)
	}
	rows, err := gw.Stats(gateway.StatsQuery{From: minute, To: minute.Add(time.Minute)})
	if err != nil || len(rows) != 1 {
		t.Fatalf("rows %+v, %v", rows, err)
	}
	raw, err := json.Marshal(rows[0])
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Latency struct {
			Counts []uint64  `json:"counts"`
			LeMs   []float64 `json:"le_ms"`
		} `json:"latency"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Latency.LeMs, gateway.LatencyBounds) || len(got.Latency.Counts) != len(got.Latency.LeMs)+1 {
		t.Fatalf("latency %s: want le_ms %v, one shorter than counts", raw, gateway.LatencyBounds)
	}

	// A saved row restores with its bounds; bounds of another histogram are refused.
	if err := gw.RestoreStats(gateway.Minute, rows); err != nil {
		t.Fatalf("a row as Stats gave it: %v", err)
	}
	rows[0].Latency.LeMs = []float64{1, 10, 100}
	if err := gw.RestoreStats(gateway.Minute, rows); err == nil {
		t.Fatal("a row of other bounds was restored")
	}
}
