// Command syncbench measures package appsync between two reference servers
// (examples/refserver) on loopback, for bench/appsync/run, which starts the
// two centers and gives their URLs and admin tokens:
//
//  1. propagation latency of config changes A→B: B's project is bound to
//     A's with a config task; the app's spec is changed in A (env SEQ=i)
//     and pushed, one change at a time, and timed from the answer to the
//     push until B's copy of the app shows i, pushed (B's API polled every
//     -poll). A second figure takes the end from B's task status instead
//     (last_applied.time, B's own clock, so that it does not depend on the
//     polling). p50, p99 and max over -changes changes (goal: p99 < 200 ms);
//  2. artifact sync throughput: a version task (mode copy) copies each
//     version released in A into B's store. A version of -artifact-mb MiB
//     (the refserver binary, run as its demo app, padded with random
//     bytes) is uploaded to A and deployed on one local node there; the
//     sync is timed until B's task has stored it (its status'
//     last_applied.time, B's clock; B's API lists it within a poll of
//     that). With -settle (the default) the task is paused while A
//     releases, the page cache flushed (sync(2)) and the task resumed: the
//     sync is timed from the resume, with no writeback of A's upload and
//     install pending; -settle=false times it from A's release event. It
//     is compared with HTTP GETs of the same artifact from A's API into a
//     file on the same filesystem: plain (as curl -o), with sha256 of the
//     bytes, and with sha256 and fsync (a store checking the whole digest,
//     as B's does where A has no piece sums), each made
//     just before the release and just after the sync, so that each round
//     compares its sync with the mean of its own copies. Medians of
//     -repeat versions; the goal is sync ≥ 0.9× the plain copy. Given the
//     centers' pids, it also prints the CPU time a sync costs (A+B) and a
//     copy with sha256 and fsync (A+this program), which other load on a
//     shared machine disturbs less than MB/s, and how B checked its
//     copies (deploy_artifact_uploads_total: by the piece sums A's release
//     changes carry, or by the whole digest).
//
// MB is 2^20 bytes throughout. Results are printed as lines of their own:
//
//	config_changes=N p50_ms=X p99_ms=Y max_ms=Z
//	config_changes=N status_p50_ms=X status_p99_ms=Y status_max_ms=Z
//	artifact_mb=N sync_mbps=X http_copy_mbps=Y http_copy_sha256_mbps=Z http_copy_sha256_fsync_mbps=W
//	cpu_ms_per_gib sync=X http_copy_sha256_fsync=Y
//	ratio appsync/http=X.XX
//	ratio appsync/http_sha256=X.XX
//	ratio appsync/http_sha256_fsync=X.XX
//	b_checked pieces=N digest=M
package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	aURL := flag.String("a", "", "center A's URL (source)")
	bURL := flag.String("b", "", "center B's URL (target)")
	aAdmin := flag.String("admin-a", os.Getenv("SYNCBENCH_ADMIN_A"), "center A's admin token (default $SYNCBENCH_ADMIN_A)")
	bAdmin := flag.String("admin-b", os.Getenv("SYNCBENCH_ADMIN_B"), "center B's admin token (default $SYNCBENCH_ADMIN_B)")
	changes := flag.Int("changes", 1000, "config changes to time")
	poll := flag.Duration("poll", 2*time.Millisecond, "how often B is polled for a change")
	artifactMB := flag.Int("artifact-mb", 256, "artifact size in MiB; 0 skips the throughput measurement")
	repeat := flag.Int("repeat", 3, "versions synced (and HTTP copies of each); the medians are reported")
	exe := flag.String("exe", "", "the refserver binary, the start of the artifact (run as its demo app)")
	appPort := flag.Int("app-port", 0, "loopback port of the app deployed in A")
	pidA := flag.Int("pid-a", 0, "center A's process, for CPU figures (optional)")
	pidB := flag.Int("pid-b", 0, "center B's process, for CPU figures (optional)")
	settle := flag.Bool("settle", true, "start each timed transfer with no disk writeback pending: the version task is paused while A releases, the page cache flushed (sync(2)) and the task resumed, and the sync timed from the resume; false: timed from A's release event, the task running")
	work := flag.String("work", "", "directory for the artifact and the HTTP copies, on the centers' filesystem")
	timeout := flag.Duration("timeout", 5*time.Minute, "bound on the whole benchmark")
	flag.Parse()
	if *aURL == "" || *bURL == "" || *aAdmin == "" || *bAdmin == "" {
		fmt.Fprintln(os.Stderr, "syncbench: -a, -b, -admin-a and -admin-b are required; bench/appsync/run gives them")
		os.Exit(2)
	}
	if *artifactMB > 0 && (*exe == "" || *appPort == 0 || *work == "") {
		fmt.Fprintln(os.Stderr, "syncbench: -exe, -app-port and -work are required for the throughput measurement (or -artifact-mb 0)")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	b := &bench{
		a: center{url: *aURL, admin: *aAdmin}, b: center{url: *bURL, admin: *bAdmin},
		poll: *poll, appPort: *appPort, exe: *exe, work: *work, pidA: *pidA, pidB: *pidB,
	}
	err := b.setup(ctx)
	if err == nil {
		err = b.latency(ctx, *changes)
	}
	if err == nil && *artifactMB > 0 {
		err = b.throughput(ctx, int64(*artifactMB)<<20, *repeat, *settle)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "syncbench:", err)
		stop()
		os.Exit(1)
	}
}

// client talks to both centers, keeping connections open as a tool would.
var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}

// center is one reference server and a token for it.
type center struct{ url, admin string }

// call sends in as JSON with the token and decodes the answer into out
// (when not nil); an answer other than 2xx is an error.
func call(ctx context.Context, base, token, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s%s: %s: %s", method, base, path, resp.Status, bytes.TrimSpace(raw))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: %w: %s", method, path, err, raw)
	}
	return nil
}

// tenant is a team of one center with a project and a token of the team.
type tenant struct {
	base, team, project, token string
}

func (t tenant) call(ctx context.Context, method, path string, in, out any) error {
	return call(ctx, t.base, t.token, method, path, in, out)
}

func newTenant(ctx context.Context, c center, team, project string) (tenant, error) {
	var tm, pj struct{ ID string }
	var tok struct{ Secret string }
	if err := call(ctx, c.url, c.admin, "POST", "/api/v1/teams", map[string]string{"name": team}, &tm); err != nil {
		return tenant{}, err
	}
	if err := call(ctx, c.url, c.admin, "POST", "/api/v1/projects", map[string]string{"team_id": tm.ID, "name": project}, &pj); err != nil {
		return tenant{}, err
	}
	if err := call(ctx, c.url, c.admin, "POST", "/api/v1/tokens", map[string]string{"team_id": tm.ID, "name": "syncbench"}, &tok); err != nil {
		return tenant{}, err
	}
	return tenant{base: c.url, team: tm.ID, project: pj.ID, token: tok.Secret}, nil
}

type bench struct {
	a, b    center
	poll    time.Duration
	appPort int
	exe     string
	work    string
	pidA    int
	pidB    int

	ta, tb            tenant
	appA, appB        string // the app's resource IDs in A and B
	spec              map[string]any
	cfgTask, verTask  string
	lastCfgAppliedSeq int64
}

const appName = "outpatient"

// setup makes the tenants, A's app, B's binding and both tasks, and waits
// until B has the app.
func (b *bench) setup(ctx context.Context) error {
	for _, c := range []center{b.a, b.b} {
		if err := waitReady(ctx, c.url); err != nil {
			return err
		}
	}
	var err error
	if b.ta, err = newTenant(ctx, b.a, "yb-dev", "hxjb"); err != nil {
		return err
	}
	if b.tb, err = newTenant(ctx, b.b, "yb-dev", "hxjb"); err != nil {
		return err
	}
	// The app is the refserver binary run as the demo app (the artifact),
	// as the demo deploys it.
	b.spec = map[string]any{"name": appName, "kind": "executable",
		"args":       []string{"demo-app", "-version", "{{.Version}}", "-listen", "{{.Host}}:{{.Port}}"},
		"ports":      []any{map[string]any{"name": "http", "port": cmp.Or(b.appPort, 18085)}},
		"health":     map[string]any{"type": "http", "path": "/healthz", "interval": "100ms", "start_timeout": "60s"},
		"stop_grace": "5s", "env": map[string]string{"SEQ": "0"}}
	var app struct{ ID string }
	if err := b.ta.call(ctx, "POST", "/api/v1/deploy/apps", map[string]any{"project_id": b.ta.project, "spec": b.spec}, &app); err != nil {
		return err
	}
	b.appA = app.ID
	if err := b.ta.call(ctx, "POST", "/api/v1/deploy/apps/"+b.appA+"/push", nil, nil); err != nil {
		return err
	}

	var binding struct{ ID string }
	if err := b.tb.call(ctx, "POST", "/api/v1/appsync/bindings", map[string]any{"spec": map[string]any{
		"name": "hxjb", "kind": "project", "target": b.tb.project,
		"source": map[string]any{"url": b.a.url, "id": b.ta.project, "token": b.ta.token}}}, &binding); err != nil {
		return err
	}
	if err := b.tb.call(ctx, "POST", "/api/v1/appsync/bindings/"+binding.ID+"/push", nil, nil); err != nil {
		return err
	}
	newTask := func(spec map[string]any) (string, error) {
		var res struct{ ID string }
		spec["binding"] = binding.ID
		if err := b.tb.call(ctx, "POST", "/api/v1/appsync/tasks", map[string]any{"spec": spec}, &res); err != nil {
			return "", err
		}
		return res.ID, b.tb.call(ctx, "POST", "/api/v1/appsync/tasks/"+res.ID+"/push", nil, nil)
	}
	if b.cfgTask, err = newTask(map[string]any{"name": "config", "kind": "config", "wait": "30s", "retry_min": "20ms", "retry_max": "1s"}); err != nil {
		return err
	}
	start := time.Now()
	for {
		id, seq, pushed, err := b.appInB(ctx)
		if err != nil {
			return err
		}
		if seq == "0" && pushed {
			b.appB = id
			break
		}
		if time.Since(start) > 30*time.Second {
			st, _ := b.status(ctx, b.cfgTask)
			return fmt.Errorf("the app of center A did not reach B in 30s; config task: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	st, err := b.status(ctx, b.cfgTask)
	if err != nil {
		return err
	}
	if st.LastApplied != nil {
		b.lastCfgAppliedSeq = st.LastApplied.Seq
	}
	// B's app exists now: a version task copies releases into it.
	b.verTask, err = newTask(map[string]any{"name": "versions", "kind": "version", "wait": "30s", "retry_min": "20ms", "retry_max": "1s",
		"version": map[string]any{"mode": "copy"}})
	return err
}

func waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, "GET", base+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is not ready after 30s (last: %v)", base, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// appInB reads B's copy of the app: its ID, env SEQ, and whether its spec is
// pushed.
func (b *bench) appInB(ctx context.Context) (id, seq string, pushed bool, err error) {
	var list struct {
		Items []struct {
			ID, Name string
			Spec     struct {
				Env map[string]string `json:"env"`
			} `json:"spec"`
			Revision       int64 `json:"revision"`
			PushedRevision int64 `json:"pushed_revision"`
		} `json:"items"`
	}
	if err := b.tb.call(ctx, "GET", "/api/v1/deploy/apps?project_id="+b.tb.project, nil, &list); err != nil {
		return "", "", false, err
	}
	for _, it := range list.Items {
		if it.Name == appName {
			return it.ID, it.Spec.Env["SEQ"], it.PushedRevision == it.Revision, nil
		}
	}
	return "", "", false, nil
}

type taskStatus struct {
	State       string `json:"state"`
	LastError   string `json:"last_error"`
	Cursor      int64  `json:"cursor"`
	Head        int64  `json:"head"`
	Applied     int64  `json:"applied"`
	LastApplied *struct {
		Seq     int64     `json:"seq"`
		Version string    `json:"version"`
		Time    time.Time `json:"time"`
	} `json:"last_applied"`
}

func (b *bench) status(ctx context.Context, task string) (taskStatus, error) {
	var st taskStatus
	err := b.tb.call(ctx, "GET", "/api/v1/appsync/tasks/"+task+"/status", nil, &st)
	return st, err
}

// latency changes the app in A n times, one at a time, and times each
// change until B shows it.
func (b *bench) latency(ctx context.Context, n int) error {
	seen := make([]time.Duration, 0, n)    // until B's API shows the change
	applied := make([]time.Duration, 0, n) // until B's task applied it (its status)
	var pushes time.Duration
	start := time.Now()
	for i := 1; i <= n; i++ {
		want := strconv.Itoa(i)
		b.spec["env"] = map[string]string{"SEQ": want}
		t := time.Now()
		if err := b.ta.call(ctx, "PUT", "/api/v1/deploy/apps/"+b.appA, map[string]any{"spec": b.spec}, nil); err != nil {
			return err
		}
		if err := b.ta.call(ctx, "POST", "/api/v1/deploy/apps/"+b.appA+"/push", nil, nil); err != nil {
			return err
		}
		t0 := time.Now()
		pushes += t0.Sub(t)
		deadline := t0.Add(30 * time.Second)
		for {
			_, seq, pushed, err := b.appInB(ctx)
			if err != nil {
				return err
			}
			if seq == want && pushed {
				seen = append(seen, time.Since(t0))
				break
			}
			if time.Now().After(deadline) {
				st, _ := b.status(ctx, b.cfgTask)
				return fmt.Errorf("change %d did not reach B in 30s; config task: %+v", i, st)
			}
			sleep(ctx, b.poll)
		}
		// The task records the change as applied just after writing it.
		for {
			st, err := b.status(ctx, b.cfgTask)
			if err != nil {
				return err
			}
			if st.LastApplied != nil && st.LastApplied.Seq > b.lastCfgAppliedSeq {
				b.lastCfgAppliedSeq = st.LastApplied.Seq
				applied = append(applied, st.LastApplied.Time.Sub(t0))
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("change %d is in B but not in the config task's status: %+v", i, st)
			}
			sleep(ctx, b.poll)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	elapsed := time.Since(start)
	fmt.Printf("config sync: %d changes, one at a time, in %v (A's PUT+push took %v on average); B polled every %v\n",
		n, elapsed.Round(time.Millisecond), (pushes / time.Duration(n)).Round(10*time.Microsecond), b.poll)
	fmt.Printf("config_changes=%d p50_ms=%s p99_ms=%s max_ms=%s\n", n,
		ms(percentile(seen, 50)), ms(percentile(seen, 99)), ms(slices.Max(seen)))
	fmt.Printf("config_changes=%d status_p50_ms=%s status_p99_ms=%s status_max_ms=%s\n", n,
		ms(percentile(applied, 50)), ms(percentile(applied, 99)), ms(slices.Max(applied)))
	fmt.Printf("  p99 goal < 200ms %s\n", verdict(percentile(seen, 99) < 200*time.Millisecond))
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// throughput releases repeat versions of size bytes in A and times each
// one's sync into B, between HTTP copies of the same artifact from A made
// just before the release and just after the sync: each round compares the
// sync with the mean of its two copies, so that a load that drifts on a
// shared machine weighs on both alike.
func (b *bench) throughput(ctx context.Context, size int64, repeat int, settle bool) error {
	var node struct{ ID string }
	if err := call(ctx, b.a.url, b.a.admin, "POST", "/api/v1/deploy/nodes", map[string]any{"team_id": b.ta.team,
		"spec": map[string]any{"name": "n1", "driver": "local", "host": "127.0.0.1"}}, &node); err != nil {
		return err
	}
	if err := call(ctx, b.a.url, b.a.admin, "POST", "/api/v1/deploy/nodes/"+node.ID+"/push", nil, nil); err != nil {
		return err
	}
	base, baseHash, err := makeArtifact(b.exe, filepath.Join(b.work, "artifact"), size)
	if err != nil {
		return err
	}
	defer os.Remove(base)
	how := "from A's release event, the task running (-settle=false)"
	if settle {
		how = "from resuming the version task, paused while A released, after sync(2) (-settle)"
	}
	fmt.Printf("artifact: %d MiB (%s, padded with random bytes), %d versions; sync timed %s\n", size>>20, filepath.Base(b.exe), repeat, how)

	var syncs []time.Duration
	var copied [3][]time.Duration // by copyMode, mean of the copies before and after each sync
	var ratios [3][]float64       // by copyMode, per round: copy time / sync time
	var syncCPU, copyCPU []time.Duration
	var eventAfter int64
	for r := 1; r <= repeat; r++ {
		version := fmt.Sprintf("v%d", r)
		// Each version differs from the others by a trailer after the padding.
		trailer := fmt.Sprintf("\nsyncbench %s %d\n", version, time.Now().UnixNano())
		hc, err := baseHash.(hash.Cloner).Clone()
		if err != nil {
			return err
		}
		io.WriteString(hc, trailer)
		digest := "sha256:" + hex.EncodeToString(hc.Sum(nil))
		total := size + int64(len(trailer))
		upStart := time.Now()
		if err := upload(ctx, b.ta, "/api/v1/deploy/apps/"+b.appA+"/versions/"+version, base, trailer, total, digest); err != nil {
			return err
		}
		upload := time.Since(upStart)

		// The endpoint B reads the artifact from, so that the copy and the sync differ in
		// the receiver only.
		path := "/api/v1/appsync/feeds/projects/" + b.ta.project + "/release/artifacts/" + b.ta.project + "/" + appName + "/" + version
		var before, after [3]time.Duration
		var cpuBefore, cpuAfter time.Duration
		copies := func(out *[3]time.Duration, cpu *time.Duration) error {
			for m := range out {
				if settle {
					syscall.Sync()
				}
				c0 := b.cpu(b.pidA) + selfCPU()
				d, err := httpCopy(ctx, b.ta, path, filepath.Join(b.work, "copy"), total, digest, copyMode(m))
				if err != nil {
					return err
				}
				out[m] = d
				if copyMode(m) == hashSyncCopy {
					*cpu = b.cpu(b.pidA) + selfCPU() - c0
				}
			}
			return nil
		}
		// A's upload wrote the artifact with direct I/O, around the page cache: one copy,
		// not timed, brings it in, so that every timed transfer reads it from there.
		if _, err := httpCopy(ctx, b.ta, path, filepath.Join(b.work, "copy"), total, digest, plainCopy); err != nil {
			return err
		}
		if err := copies(&before, &cpuBefore); err != nil {
			return err
		}

		if settle {
			// Hold the copy until A's release is done and its writes are on disk.
			if err := b.tb.call(ctx, "POST", "/api/v1/appsync/tasks/"+b.verTask+"/pause", struct{}{}, nil); err != nil {
				return err
			}
		}
		depStart := time.Now()
		if err := b.deployA(ctx, version); err != nil {
			return err
		}
		deployed := time.Since(depStart)
		ev, err := b.releaseEvent(ctx, eventAfter, version)
		if err != nil {
			return err
		}
		eventAfter = ev.Seq
		from, c0 := ev.Time, time.Duration(0)
		if settle {
			syscall.Sync()
			c0 = b.cpu(b.pidA) + b.cpu(b.pidB)
			from = time.Now()
			if err := b.tb.call(ctx, "POST", "/api/v1/appsync/tasks/"+b.verTask+"/resume", struct{}{}, nil); err != nil {
				return err
			}
		}
		seen, applied, err := b.waitVersionInB(ctx, version, digest)
		if err != nil {
			return err
		}
		cpu := b.cpu(b.pidA) + b.cpu(b.pidB) - c0
		// B's own clock, so that the polling does not count.
		syncD := applied.Sub(from)
		syncs = append(syncs, syncD)

		if err := copies(&after, &cpuAfter); err != nil {
			return err
		}
		var mean [3]time.Duration
		for m := range mean {
			mean[m] = (before[m] + after[m]) / 2
			copied[m] = append(copied[m], mean[m])
			ratios[m] = append(ratios[m], mean[m].Seconds()/syncD.Seconds())
		}
		if settle && b.pidA > 0 && b.pidB > 0 {
			syncCPU, copyCPU = append(syncCPU, cpu), append(copyCPU, (cpuBefore+cpuAfter)/2)
		}
		fmt.Printf("version %s: upload to A %v (%s MB/s), deployed in A in %v\n", version,
			upload.Round(time.Millisecond), mbps(total, upload), deployed.Round(time.Millisecond))
		fmt.Printf("  sync to B %v (%s MB/s; listed by B's API at %v, polled every 10ms); http copy before/after %s, +sha256 %s, +sha256+fsync %s\n",
			syncD.Round(time.Millisecond), mbps(total, syncD), seen.Sub(from).Round(time.Millisecond),
			pair(total, before[plainCopy], after[plainCopy]), pair(total, before[hashCopy], after[hashCopy]),
			pair(total, before[hashSyncCopy], after[hashSyncCopy]))
		if len(syncCPU) > 0 {
			fmt.Printf("  CPU: sync %v (A+B), http copy+sha256+fsync %v (A+client)\n",
				cpu.Round(time.Millisecond), ((cpuBefore + cpuAfter) / 2).Round(time.Millisecond))
		}
	}
	s := median(syncs)
	fmt.Printf("artifact_mb=%d sync_mbps=%s http_copy_mbps=%s http_copy_sha256_mbps=%s http_copy_sha256_fsync_mbps=%s (medians of %d)\n",
		size>>20, mbps(size, s), mbps(size, median(copied[plainCopy])), mbps(size, median(copied[hashCopy])),
		mbps(size, median(copied[hashSyncCopy])), repeat)
	if len(syncCPU) > 0 {
		gib := float64(size) / (1 << 30)
		fmt.Printf("cpu_ms_per_gib sync=%.0f http_copy_sha256_fsync=%.0f\n",
			float64(median(syncCPU).Milliseconds())/gib, float64(median(copyCPU).Milliseconds())/gib)
	}
	// The ratios are medians of each round's: its sync against its own copies.
	fmt.Printf("ratio appsync/http=%.2f\n", medianF(ratios[plainCopy]))
	fmt.Printf("ratio appsync/http_sha256=%.2f\n", medianF(ratios[hashCopy]))
	fmt.Printf("ratio appsync/http_sha256_fsync=%.2f\n", medianF(ratios[hashSyncCopy]))
	fmt.Printf("  goal ≥ 0.9× the plain http copy %s\n", verdict(medianF(ratios[plainCopy]) >= 0.9))
	return b.printChecks(ctx)
}

// printChecks prints how many artifacts B stored checked by piece sums and by
// the whole digest, from its metrics.
func (b *bench) printChecks(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, "GET", b.b.url+"/metrics", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("read the metrics of center b: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read the metrics of center b: %w", err)
	}
	n := map[string]string{"pieces": "0", "digest": "0"}
	for line := range strings.Lines(string(body)) {
		for check := range n {
			if v, ok := strings.CutPrefix(line, `deploy_artifact_uploads_total{check="`+check+`",result="stored"} `); ok {
				n[check] = strings.TrimSpace(v)
			}
		}
	}
	fmt.Printf("b_checked pieces=%s digest=%s\n", n["pieces"], n["digest"])
	return nil
}

// pair formats the MB/s of a copy before and after a sync.
func pair(size int64, before, after time.Duration) string {
	return mbps(size, before) + "/" + mbps(size, after) + " MB/s"
}

// cpu returns the CPU time pid has used (user and system), 0 when pid is 0
// or gone.
func (b *bench) cpu(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on Linux.
const clockTicks = 100

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// makeArtifact writes exe followed by random bytes up to size to path and
// returns the path and the sha256 state after it.
func makeArtifact(exe, path string, size int64) (string, hash.Hash, error) {
	in, err := os.Open(exe)
	if err != nil {
		return "", nil, err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return "", nil, err
	}
	if st.Size() > size {
		return "", nil, fmt.Errorf("the artifact must be larger than %s (%d MiB)", exe, st.Size()>>20+1)
	}
	out, err := os.Create(path)
	if err != nil {
		return "", nil, err
	}
	h := sha256.New()
	w := io.MultiWriter(out, h)
	_, err = io.Copy(w, in)
	if err == nil {
		var seed [32]byte
		for i := range seed {
			seed[i] = byte(rand.Uint32())
		}
		_, err = io.CopyN(w, rand.NewChaCha8(seed), size-st.Size())
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", nil, err
	}
	return path, h, nil
}

// upload streams file followed by trailer as a version of the app.
func upload(ctx context.Context, t tenant, path, file, trailer string, size int64, digest string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	req, err := http.NewRequestWithContext(ctx, "PUT", t.base+path, io.MultiReader(f, bytes.NewReader([]byte(trailer))))
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+t.token)
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("X-Checksum-Sha256", digest)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("upload %s: %w", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("upload %s: %s: %s", path, resp.Status, bytes.TrimSpace(raw))
	}
	return nil
}

// deployA releases version in A on node n1 and waits for the deployment.
func (b *bench) deployA(ctx context.Context, version string) error {
	var d struct{ ID, State, Error string }
	if err := b.ta.call(ctx, "POST", "/api/v1/deploy/apps/"+b.appA+"/deployments", map[string]any{
		"version": version, "nodes": []string{"n1"}, "strategy": map[string]any{"type": "all-at-once"}}, &d); err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for d.State == "running" || d.State == "" {
		if time.Now().After(deadline) {
			return fmt.Errorf("deployment %s of %s still running after 2m", d.ID, version)
		}
		sleep(ctx, 20*time.Millisecond)
		if err := b.ta.call(ctx, "GET", "/api/v1/deploy/deployments/"+d.ID, nil, &d); err != nil {
			return err
		}
	}
	if d.State != "succeeded" {
		return fmt.Errorf("deployment %s of %s in A: %s: %s", d.ID, version, d.State, d.Error)
	}
	return nil
}

type releaseEvent struct {
	Seq     int64     `json:"seq"`
	Time    time.Time `json:"time"`
	Version string    `json:"version"`
}

// releaseEvent finds A's release event of version after the cursor.
func (b *bench) releaseEvent(ctx context.Context, after int64, version string) (releaseEvent, error) {
	var page struct {
		Items []releaseEvent `json:"items"`
	}
	if err := b.ta.call(ctx, "GET", "/api/v1/deploy/events?after="+strconv.FormatInt(after, 10), nil, &page); err != nil {
		return releaseEvent{}, err
	}
	for _, e := range page.Items {
		if e.Version == version {
			return e, nil
		}
	}
	return releaseEvent{}, fmt.Errorf("no release event of %s in A after %d: %+v", version, after, page.Items)
}

// waitVersionInB polls B until its app lists version and its version task
// says it applied it, and returns when the version was seen and when the
// task applied it (B's clock).
func (b *bench) waitVersionInB(ctx context.Context, version, digest string) (seen, applied time.Time, err error) {
	deadline := time.Now().Add(2 * time.Minute)
	for seen.IsZero() {
		var list struct {
			Items []struct{ Name, Digest string } `json:"items"`
		}
		if err := b.tb.call(ctx, "GET", "/api/v1/deploy/apps/"+b.appB+"/versions", nil, &list); err != nil {
			return seen, applied, err
		}
		now := time.Now()
		for _, v := range list.Items {
			if v.Name == version {
				if v.Digest != digest {
					return seen, applied, fmt.Errorf("version %s in B has digest %s, want %s", version, v.Digest, digest)
				}
				seen = now
			}
		}
		if now.After(deadline) {
			st, _ := b.status(ctx, b.verTask)
			return seen, applied, fmt.Errorf("version %s not in B after 2m; version task: %+v", version, st)
		}
		sleep(ctx, 10*time.Millisecond)
	}
	// The task records the version as applied just after storing it.
	for {
		st, err := b.status(ctx, b.verTask)
		if err != nil {
			return seen, applied, err
		}
		if st.LastApplied != nil && st.LastApplied.Version == version {
			return seen, st.LastApplied.Time, nil
		}
		if time.Since(seen) > 30*time.Second {
			return seen, applied, fmt.Errorf("version %s is in B, but not in the version task's status: %+v", version, st)
		}
		sleep(ctx, 2*time.Millisecond)
	}
}

// copyMode is what an HTTP copy does besides writing the file.
type copyMode int

const (
	plainCopy    copyMode = iota // write only, as curl -o
	hashCopy                     // and sha256 of the bytes, checked
	hashSyncCopy                 // and fsync, as B's artifact store does
)

// httpCopy GETs the artifact at path from A into a file and returns how
// long it took, doing what mode says besides. The file is removed.
func httpCopy(ctx context.Context, t tenant, path, file string, size int64, digest string, mode copyMode) (time.Duration, error) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, "GET", t.base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+t.token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return 0, fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(raw))
	}
	f, err := os.Create(file)
	if err != nil {
		return 0, err
	}
	defer os.Remove(file)
	var w io.Writer = f
	h := sha256.New()
	if mode != plainCopy {
		w = io.MultiWriter(f, h)
	}
	n, err := io.Copy(w, resp.Body)
	if err == nil && mode == hashSyncCopy {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	d := time.Since(start)
	switch {
	case err != nil:
		return 0, fmt.Errorf("GET %s: %w", path, err)
	case n != size:
		return 0, fmt.Errorf("GET %s: %d bytes, want %d", path, n, size)
	case mode != plainCopy && "sha256:"+hex.EncodeToString(h.Sum(nil)) != digest:
		return 0, errors.New("GET " + path + ": the copy does not match its digest")
	}
	return d, nil
}

func medianF(fs []float64) float64 {
	s := slices.Sorted(slices.Values(fs))
	return s[len(s)/2]
}

func median(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	return s[len(s)/2]
}

func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	i := (len(s)*p + 99) / 100
	return s[max(0, min(i, len(s))-1)]
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64)
}

func mbps(size int64, d time.Duration) string {
	return strconv.FormatFloat(float64(size)/(1<<20)/d.Seconds(), 'f', 0, 64)
}

func verdict(ok bool) string {
	if ok {
		return "MET"
	}
	return "NOT MET"
}
