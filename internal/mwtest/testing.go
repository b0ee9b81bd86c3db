package mwtest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// Require skips t when no Docker daemon answers; but when the CI environment
// variable is true it fails t instead, because a CI machine is meant to run
// the integration suites, not to pass by skipping them.
func Require(t testing.TB) {
	t.Helper()
	if err := dockerAvailable(); err != nil {
		if inCI() {
			t.Fatalf("%v\n(CI is set, so a missing Docker fails the test rather than skipping it)", err)
		}
		t.Skipf("skipping: %v\n(with CI=true this fails)", err)
	}
}

// NewTestRig is NewRig for one test: it calls Require, logs which images the
// rig runs, and when t and its subtests are done removes the rig, after
// logging its containers' last lines if t failed.
func NewTestRig(t testing.TB, cfg Config) *Rig {
	t.Helper()
	Require(t)
	r, err := NewRig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r.describe())
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range r.snapshot() {
				t.Log(s.logTail())
			}
		}
		// t.Context is done by now.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return r
}

// Main runs a test binary's tests around one Rig that they share, so that
// they do not each pay for starting containers. Call it from TestMain:
//
//	var primary *mwtest.Service
//
//	func TestMain(m *testing.M) {
//		os.Exit(mwtest.Main(m, mwtest.Config{}, func(ctx context.Context, r *mwtest.Rig) error {
//			var err error
//			primary, err = r.StartRedis(ctx, mwtest.CenterA, mwtest.RedisOptions{})
//			return err
//		}))
//	}
//
//	func TestSomething(t *testing.T) {
//		mwtest.Require(t)
//		// use primary.HostAddr
//	}
//
// setup starts the shared services; if it fails, no test runs. Main removes
// the rig after the tests. Where Docker is unavailable Main fails at once
// under CI=true; elsewhere it runs the tests without calling setup, so every
// test that uses the rig must call Require first, and skips there.
func Main(m *testing.M, cfg Config, setup func(ctx context.Context, r *Rig) error) int {
	// testing parses its flags in m.Run, after TestMain starts; Verbose
	// below needs them now.
	if !flag.Parsed() {
		flag.Parse()
	}
	if err := dockerAvailable(); err != nil {
		if inCI() {
			fmt.Fprintf(os.Stderr, "%v\n(CI is set, so a missing Docker fails the tests rather than skipping them)\n", err)
			return 1
		}
		return m.Run()
	}
	ctx := context.Background()
	r, err := NewRig(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	if testing.Verbose() {
		fmt.Fprintln(os.Stderr, r.describe())
	}
	if err := setup(ctx, r); err != nil {
		fmt.Fprintf(os.Stderr, "mwtest: setting up the shared rig: %v\n", err)
		for _, s := range r.snapshot() {
			fmt.Fprintln(os.Stderr, s.logTail())
		}
		return 1
	}
	return m.Run()
}

// inCI reports whether the CI environment variable holds a true value, as CI
// services set it.
func inCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// dockerAvailable reports, once per process, why no Docker daemon answers,
// or nil if one does.
var dockerAvailable = sync.OnceValue(func() error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	docker, err := dockerClient(ctx)
	if err != nil {
		return err
	}
	return docker.Close()
})

// dockerClient connects to the Docker daemon that testcontainers finds
// (DOCKER_HOST, its configuration, or the default socket) and checks that it
// answers.
func dockerClient(ctx context.Context) (*testcontainers.DockerClient, error) {
	// The reaper is an image that cannot be pulled where no registry is
	// reachable, and a Rig removes what it created in Close; an explicit
	// setting still wins. testcontainers reads this once, on first use.
	if _, ok := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !ok {
		if err := os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true"); err != nil {
			return nil, fmt.Errorf("mwtest: disable the testcontainers reaper: %w", err)
		}
	}
	docker, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, fmt.Errorf("mwtest: connect to Docker: %w", err)
	}
	if _, err := docker.Ping(ctx, client.PingOptions{}); err != nil {
		_ = docker.Close()
		return nil, fmt.Errorf("mwtest: ping Docker: %w", err)
	}
	return docker, nil
}
