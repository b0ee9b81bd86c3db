// Command deploybench measures package deploy for bench/deploy/run:
//
//  1. a rolling upgrade of 10 instances from v1 to v2, batch size 2, behind
//     an lb balancer that steady client traffic goes through: the time it
//     takes and the requests that failed (goal: 0). The nodes are local
//     (deploy/local), ten directories on this host, since what is measured
//     is the rollout and its traffic handling, not the transport;
//  2. artifact upload to SSH nodes (deploy/ssh; OpenSSH servers in local
//     containers, internal/mwtest) against plain scp of the same file with
//     the same key to the same container: to one node, and distributed to
//     three at once (goal: deploy at least 0.9× scp). scp runs twice: with
//     the cipher golang.org/x/crypto/ssh negotiates by default
//     (aes128-gcm@openssh.com), the like-for-like comparison that the ratio
//     uses, and with its own default (chacha20-poly1305@openssh.com). The
//     driver verifies each upload on the node (a sha256 of the file there)
//     and scp does not; the program says whether the nodes have openssl,
//     which the driver then hashes with.
//
// Everything runs on loopback and in the rig's containers, which are
// removed at the end, also on SIGINT.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/shuanghuo/shuanghuo/deploy"
	"github.com/shuanghuo/shuanghuo/deploy/deploytest"
	"github.com/shuanghuo/shuanghuo/deploy/local"
	deployssh "github.com/shuanghuo/shuanghuo/deploy/ssh"
	"github.com/shuanghuo/shuanghuo/internal/mwtest"
	"github.com/shuanghuo/shuanghuo/lb"
)

func main() {
	instances := flag.Int("instances", 10, "instances in the rollout")
	batch := flag.Int("batch", 2, "rollout batch size")
	clients := flag.Int("clients", 4, "clients sending requests through lb during the rollout")
	sizeMiB := flag.Int("size", 200, "artifact size for the upload benchmark, MiB")
	rounds := flag.Int("rounds", 3, "rounds of each upload measurement; the median is reported")
	timeout := flag.Duration("timeout", 10*time.Minute, "bound on the whole benchmark")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	work, err := os.MkdirTemp("", "deploybench-")
	if err == nil {
		defer os.RemoveAll(work)
		err = rollout(ctx, work, *instances, *batch, *clients)
	}
	if err == nil {
		err = upload(ctx, work, int64(*sizeMiB)<<20, *rounds)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploybench:", err)
		stop()
		os.Exit(1)
	}
}

// lbTraffic drains and undrains instances in one server group of an lb
// balancer whose servers are the instances' addresses. Instances it does
// not list yet (v1 is deployed before the balancer knows their ports) are
// left alone, as deploy.Traffic allows.
type lbTraffic struct {
	b     *lb.Balancer
	group string
}

func (l lbTraffic) Drain(ctx context.Context, inst deploy.Instance) error {
	return unknownOK(l.b.Drain(ctx, l.group, inst.Addr, time.Now().Add(5*time.Second)))
}

func (l lbTraffic) Undrain(_ context.Context, inst deploy.Instance) error {
	return unknownOK(l.b.Undrain(l.group, inst.Addr))
}

func unknownOK(err error) error {
	if errors.Is(err, lb.ErrNoConfig) || errors.Is(err, lb.ErrUnknownServer) {
		return nil
	}
	return err
}

func rollout(ctx context.Context, work string, n, batch, clients int) (err error) {
	bal, err := lb.New(lb.Options{})
	if err != nil {
		return err
	}
	defer bal.Close(context.WithoutCancel(ctx))
	store, err := deploy.NewDirStore(filepath.Join(work, "artifacts"))
	if err != nil {
		return err
	}
	m, err := deploy.New(deploy.Options{
		Artifacts: store,
		Drivers:   map[string]deploy.DriverFunc{"local": local.Open},
		Traffic:   lbTraffic{bal, "app"},
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, m.Close()) }()
	app := deploy.AppConfig{
		Project: "bench", Name: "app", Kind: deploy.KindExecutable,
		Ports: []deploy.Port{{Name: "http"}},
		Health: deploy.HealthCheck{
			Type: "http", Path: "/healthz", Interval: deploy.Duration(50 * time.Millisecond),
			StartTimeout: deploy.Duration(20 * time.Second),
		},
		StopGrace: deploy.Duration(5 * time.Second),
	}
	if _, err := m.PutApp(ctx, app); err != nil {
		return err
	}
	for _, v := range []string{"v1", "v2"} {
		p, err := deploytest.Build(v, false)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		_, err = m.AddVersion(ctx, "bench", "app", deploy.VersionConfig{Name: v}, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	var nodes []string
	for i := range n {
		name := fmt.Sprintf("n%02d", i+1)
		if _, err := m.PutNode(ctx, deploy.NodeConfig{Name: name, Driver: "local", Dir: filepath.Join(work, name)}); err != nil {
			return err
		}
		nodes = append(nodes, name)
	}
	waitDeployment := func(d deploy.Deployment, err error) error {
		if err != nil {
			return err
		}
		if d, err = m.Wait(ctx, d.ID); err != nil {
			return err
		}
		if d.State != deploy.DeploymentSucceeded {
			return fmt.Errorf("deployment of %s: %s: %s", d.Version, d.State, d.Error)
		}
		return nil
	}
	if err := waitDeployment(m.Deploy(ctx, deploy.DeployRequest{Project: "bench", App: "app", Version: "v1", Nodes: nodes, Strategy: deploy.Strategy{Type: deploy.AllAtOnce}})); err != nil {
		return err
	}
	// The local driver chose the ports; the balancer's servers are the
	// instances, by the addresses the Traffic hooks name them with.
	insts, err := m.Instances(ctx, "bench", "app")
	if err != nil {
		return err
	}
	group := lb.ServerGroup{Name: "app", HealthCheck: &lb.HealthCheck{Type: lb.CheckHTTP, Path: "/healthz", Interval: lb.Duration(time.Second)}}
	for _, inst := range insts {
		ap, err := netip.ParseAddrPort(inst.Addr)
		if err != nil {
			return err
		}
		group.Servers = append(group.Servers, lb.Server{Address: ap.Addr().String(), Port: int(ap.Port()), Weight: 1})
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	if _, err := bal.Apply(ctx, lb.BalancerConfig{
		Name: "bench", Address: "127.0.0.1",
		Listeners: []lb.Listener{{Name: "web", Port: port, Protocol: lb.ProtocolHTTP, DefaultGroup: "app"}},
		Groups:    []lb.ServerGroup{group},
	}); err != nil {
		return err
	}

	var requests, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				resp, err := client.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = errors.New(resp.Status)
					}
				}
				requests.Add(1)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	// Traffic flows before the rollout starts and until it has ended.
	time.Sleep(500 * time.Millisecond)
	before := requests.Load()
	start := time.Now()
	err = waitDeployment(m.Deploy(ctx, deploy.DeployRequest{Project: "bench", App: "app", Version: "v2", Strategy: deploy.Strategy{BatchSize: batch}}))
	took := time.Since(start)
	during := requests.Load() - before
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err != nil {
		return err
	}
	fmt.Printf("rollout: %d local instances v1 -> v2, batch size %d, through lb, %d clients (%d requests during the rollout, %d in all)\n", n, batch, clients, during, requests.Load())
	if e := firstErr.Load(); e != nil {
		fmt.Printf("first failed request: %s\n", e)
	}
	fmt.Printf("rollout_seconds=%.2f failed_requests=%d\n", took.Seconds(), failed.Load())
	return nil
}

// sshNode is an SSH node of the rig, as the driver and scp reach it.
type sshNode struct {
	addr string // ip:22
	ip   string
}

func upload(ctx context.Context, work string, size int64, rounds int) (err error) {
	rig, err := mwtest.NewRig(ctx, mwtest.Config{})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		err = errors.Join(err, rig.Close(cctx))
	}()
	client, err := mwtest.NewSSHKey()
	if err != nil {
		return err
	}
	keyFile := filepath.Join(work, "client_key")
	if err := os.WriteFile(keyFile, client.PEM, 0o600); err != nil {
		return err
	}
	var known strings.Builder
	var nodes []sshNode
	for range 3 {
		hk, err := mwtest.NewSSHKey()
		if err != nil {
			return err
		}
		svc, err := rig.StartSSHD(ctx, mwtest.CenterA, mwtest.SSHDOptions{HostKey: hk.PEM, AuthorizedKeys: client.AuthorizedKey})
		if err != nil {
			return err
		}
		ip, err := svc.IP(ctx)
		if err != nil {
			return err
		}
		n := sshNode{addr: netip.AddrPortFrom(ip, 22).String(), ip: ip.String()}
		known.WriteString(knownhosts.Line([]string{n.addr}, hk.Signer.PublicKey()) + "\n")
		nodes = append(nodes, n)
	}
	knownFile := filepath.Join(work, "known_hosts")
	if err := os.WriteFile(knownFile, []byte(known.String()), 0o600); err != nil {
		return err
	}

	// The artifact: random bytes, through a DirStore as the Manager keeps it.
	file := filepath.Join(work, "artifact")
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	_, err = io.CopyN(f, rand.Reader, size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	store, err := deploy.NewDirStore(filepath.Join(work, "upload-store"))
	if err != nil {
		return err
	}
	f, err = os.Open(file)
	if err != nil {
		return err
	}
	digest, _, err := store.Put(ctx, f, "", 0)
	f.Close()
	if err != nil {
		return err
	}

	drivers := make([]*deployssh.Driver, len(nodes))
	for i, n := range nodes {
		d, err := deployssh.Open(ctx, deploy.NodeConfig{
			Name: fmt.Sprintf("s%d", i+1), Driver: "ssh", Host: n.ip, Dir: "/root/bench",
			SSH: &deploy.SSHConfig{Addr: n.addr, User: "root", KeyFile: keyFile, KnownHosts: knownFile},
		})
		if err != nil {
			return err
		}
		defer d.Close()
		drivers[i] = d.(*deployssh.Driver)
	}
	ssh := func(n sshNode, cmd string) error {
		out, err := exec.CommandContext(ctx, "ssh", "-i", keyFile, "-o", "UserKnownHostsFile="+knownFile, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "root@"+n.ip, cmd).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ssh %s %s: %w: %s", n.ip, cmd, err, out)
		}
		return nil
	}
	version := 0
	install := func(d *deployssh.Driver) error {
		version++
		a := deploy.Artifact{
			Project: "bench", App: "app", Version: fmt.Sprintf("r%d", version), Kind: deploy.KindExecutable,
			Digest: digest, Size: size,
			Open: func(ctx context.Context) (io.ReadCloser, error) {
				rc, _, err := store.Open(ctx, digest)
				return rc, err
			},
		}
		return d.Install(ctx, a)
	}
	scp := func(n sshNode, cipher string) error {
		args := []string{"-q", "-i", keyFile, "-o", "UserKnownHostsFile=" + knownFile, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"}
		if cipher != "" {
			args = append(args, "-c", cipher)
		}
		out, err := exec.CommandContext(ctx, "scp", append(args, file, "root@"+n.ip+":/root/scp.bin")...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("scp to %s: %w: %s", n.ip, err, out)
		}
		return nil
	}
	clean := func(n sshNode) error { return ssh(n, "rm -rf /root/bench/versions /root/scp.bin") }
	// deploy/ssh verifies each upload on the node with openssl where the
	// node has it, with sha256sum (several times as slow) where not: say which
	// the figures are for.
	if ssh(nodes[0], "openssl version >/dev/null 2>&1") == nil {
		fmt.Println("ssh nodes have openssl: deploy/ssh verifies uploads on them with openssl dgst")
	} else {
		fmt.Println("ssh nodes have no openssl (an image from before scripts/images added it?): deploy/ssh verifies uploads on them with sha256sum")
	}

	// measure runs one way of copying to the first k nodes at once, and
	// returns the throughput in MB/s (10^6 bytes) of all of them together.
	measure := func(k int, copyTo func(i int) error) (float64, error) {
		for _, n := range nodes[:k] {
			if err := clean(n); err != nil {
				return 0, err
			}
		}
		start := time.Now()
		errs := make([]error, k)
		var wg sync.WaitGroup
		for i := range k {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = copyTo(i)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return 0, err
		}
		return float64(size) * float64(k) / time.Since(start).Seconds() / 1e6, nil
	}
	type way struct {
		name string
		copy func(i int) error
	}
	ways := []way{
		{"deploy", func(i int) error { return install(drivers[i]) }},
		{"scp aes128-gcm", func(i int) error { return scp(nodes[i], "aes128-gcm@openssh.com") }},
		{"scp default", func(i int) error { return scp(nodes[i], "") }},
	}
	for _, k := range []int{1, len(nodes)} {
		results := map[string][]float64{}
		for r := range rounds {
			for _, w := range ways {
				mbps, err := measure(k, w.copy)
				if err != nil {
					return err
				}
				fmt.Printf("upload round %d, %d node(s): %-15s %7.1f MB/s\n", r+1, k, w.name, mbps)
				results[w.name] = append(results[w.name], mbps)
			}
		}
		fmt.Printf("upload of %d MiB to %d SSH node(s) at once (containers), medians of %d rounds:\n", size>>20, k, rounds)
		for _, w := range ways {
			fmt.Printf("  %-15s %7.1f MB/s\n", w.name, median(results[w.name]))
		}
		ratio := median(results["deploy"]) / median(results["scp aes128-gcm"])
		if k == 1 {
			fmt.Printf("ratio deploy/scp=%.2f\n", ratio)
		} else {
			fmt.Printf("ratio deploy/scp (%d nodes)=%.2f\n", k, ratio)
		}
	}
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
