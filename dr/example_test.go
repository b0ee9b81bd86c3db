package dr_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/shuanghuo/shuanghuo/dr"
	"github.com/shuanghuo/shuanghuo/dr/drtest"
)

// A switchover of one DR group. Fakes stand in for the Redis driver
// (dr/redis.Open) and for the DNS, traffic and application switches that the
// reference server passes in.
func Example() {
	ctx := context.Background()
	fakes := &drtest.Fakes{}
	switches := &drtest.Recorder{}
	m, err := dr.New(dr.Options{
		Drivers: map[dr.Kind]dr.DriverFunc{dr.KindRedis: fakes.Open},
		DNS:     switches,
		Traffic: switches,
		Apps:    switches,
	})
	if err != nil {
		panic(err)
	}
	defer m.Close()

	err = m.AddGroup(ctx, dr.GroupConfig{
		Name: "orders",
		Kind: dr.KindRedis,
		A:    dr.Instance{Addr: "10.1.0.5:6379", ReplicationAddr: "redis-a.dc1:6379"},
		B:    dr.Instance{Addr: "10.2.0.5:6379", ReplicationAddr: "redis-b.dc2:6379"},
	})
	if err != nil {
		panic(err)
	}
	if err := m.Pair(ctx, "orders"); err != nil {
		panic(err)
	}

	service := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer service.Close()
	run, err := m.Start(dr.PlanConfig{
		Name:   "planned",
		Groups: []string{"orders"},
		Steps: []dr.StepConfig{
			{Kind: dr.StepPrecheck},
			{Kind: dr.StepFence},
			{Kind: dr.StepCatchUp},
			{Kind: dr.StepPromote},
			{Kind: dr.StepSwitchDNS},
			{Kind: dr.StepSwitchTraffic},
			{Kind: dr.StepStartApps},
			{Kind: dr.StepVerify, URLs: []string{service.URL}, Timeout: dr.Duration(5 * time.Second)},
		},
	}, dr.ModeSwitchover)
	if err != nil {
		panic(err)
	}
	run, err = m.Wait(ctx, run.ID)
	if err != nil {
		panic(err)
	}
	g, _ := m.Group("orders")
	fmt.Println("run:", run.State, "to", run.Target)
	fmt.Println("verified:", run.Report.Verified, "RPO bytes:", run.Report.RPO.Bytes)
	fmt.Println("group:", g.State, g.Direction)
	fmt.Println("switches:", switches.Calls())
	// Output:
	// run: succeeded to b
	// verified: true RPO bytes: 0
	// group: promoted reverse
	// switches: [switch-dns b switch-traffic b start-apps b]
}
