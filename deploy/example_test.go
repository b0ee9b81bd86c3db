package deploy_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/shuanghuo/shuanghuo/deploy"
	"github.com/shuanghuo/shuanghuo/deploy/deploytest"
)

// Deploy an app on two nodes, upgrade it batch by batch, and read the
// release feed. The nodes here use deploytest's in-memory driver; a real
// manager passes {"local": local.Open, "ssh": ssh.Open}.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "deploy-example")
	defer os.RemoveAll(dir)
	artifacts, _ := deploy.NewDirStore(dir)
	m, err := deploy.New(deploy.Options{
		Artifacts: artifacts,
		Drivers:   map[string]deploy.DriverFunc{"fake": (&deploytest.Drivers{}).Open},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()

	for _, n := range []string{"a1", "a2"} {
		_, _ = m.PutNode(ctx, deploy.NodeConfig{Name: n, Driver: "fake"})
	}
	_, err = m.PutApp(ctx, deploy.AppConfig{
		Project: "yb", Name: "outpatient", Kind: deploy.KindJar,
		JVMOptions: []string{"-Xmx512m"}, Args: []string{"--server.port={{.Port}}"},
		Ports: []deploy.Port{{Name: "http", Port: 8085}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, v := range []string{"1.0", "1.1"} {
		_, _ = m.AddVersion(ctx, "yb", "outpatient", deploy.VersionConfig{Name: v}, strings.NewReader("jar "+v))
	}

	d, _ := m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: "outpatient", Version: "1.0", Nodes: []string{"a1", "a2"}})
	d, _ = m.Wait(ctx, d.ID)
	fmt.Println(d.Version, d.State)
	d, _ = m.Deploy(ctx, deploy.DeployRequest{Project: "yb", App: "outpatient", Version: "1.1", Strategy: deploy.Strategy{BatchSize: 1, Rollback: true}})
	d, _ = m.Wait(ctx, d.ID)
	fmt.Println(d.Version, d.State, d.Batches)

	evs, _ := m.Events(ctx, 0, 10)
	for _, e := range evs {
		fmt.Printf("event %d: %s/%s %s released to %v\n", e.Seq, e.Project, e.App, e.Version, e.Nodes)
	}
	// Output:
	// 1.0 succeeded
	// 1.1 succeeded [[a1] [a2]]
	// event 1: yb/outpatient 1.0 released to [a1 a2]
	// event 2: yb/outpatient 1.1 released to [a1 a2]
}
