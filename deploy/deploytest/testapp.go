// Package deploytest helps test code that uses package deploy: a small HTTP
// app to deploy (built by the test), an in-memory node driver, a Traffic
// recorder, and TestDriver, the conformance suite every node driver runs.
package deploytest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// AppSource is the Go source of the test app. It listens on 127.0.0.1 at
// $PORT and serves GET /healthz (200 "ok <version>", or 500 when built
// broken) and GET / ("<version>"). Its arguments change how it behaves:
//
//	-host=ADDR    listen on ADDR instead of 127.0.0.1 (an SSH node's
//	              address, for clients on other hosts)
//	-crash        exit 1 at once
//	-ignore-term  ignore SIGTERM (so only SIGKILL stops it)
//	-spawn        start a child process that sleeps, writing its PID to child.pid
//
// It writes its own PID to app.pid in its working directory and exits 0 on
// SIGTERM.
const AppSource = `package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var version = "dev"
var broken = ""

func main() {
	crash, ignore, spawn, sleep := false, false, false, false
	host := "127.0.0.1"
	for _, a := range os.Args[1:] {
		if h, ok := strings.CutPrefix(a, "-host="); ok {
			host = h
		}
		switch a {
		case "-crash":
			crash = true
		case "-ignore-term":
			ignore = true
		case "-spawn":
			spawn = true
		case "-sleep":
			sleep = true
		}
	}
	if sleep {
		time.Sleep(time.Hour)
		return
	}
	if crash {
		fmt.Fprintln(os.Stderr, "crashing on purpose")
		os.Exit(1)
	}
	_ = os.WriteFile("app.pid", []byte(strconv.Itoa(os.Getpid())), 0o644)
	if spawn {
		c := exec.Command(os.Args[0], "-sleep")
		if err := c.Start(); err == nil {
			_ = os.WriteFile("child.pid", []byte(strconv.Itoa(c.Process.Pid)), 0o644)
		}
	}
	sig := make(chan os.Signal, 1)
	if ignore {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(sig, syscall.SIGTERM)
	}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if broken != "" {
			http.Error(w, "broken "+version, http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok", version)
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, version) })
	fmt.Println("app", version, "listening on", os.Getenv("PORT"))
	go func() {
		err := http.ListenAndServe(net.JoinHostPort(host, os.Getenv("PORT")), nil)
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}()
	<-sig
	fmt.Println("SIGTERM: exiting")
}
`

// BuildApp returns the path of the test app built as version; broken builds
// it with a failing health check. The app is a static executable
// (CGO_ENABLED=0), so it runs on an empty root too. Each variant is built once
// per test binary and kept in the user's cache directory
// (os.UserCacheDir()/shuanghuo/deploytest), keyed by the source and the build
// flags, so the next test binary and the next run find it built. Callers read
// or run the file and must not change it. It needs the go command.
func BuildApp(t testing.TB, version string, broken bool) string {
	t.Helper()
	p, err := Build(version, broken)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Build is BuildApp for programs that have no testing.TB, such as
// benchmarks.
func Build(version string, broken bool) (string, error) {
	f, _ := builds.LoadOrStore(buildKey{version, broken}, sync.OnceValues(func() (string, error) {
		return buildApp(version, broken)
	}))
	p, err := f.(func() (string, error))()
	if err != nil {
		return "", fmt.Errorf("deploytest: build the test app %s: %w", version, err)
	}
	return p, nil
}

type buildKey struct {
	version string
	broken  bool
}

// builds maps a buildKey to the sync.OnceValues that builds it.
var builds sync.Map

// buildApp builds the app into the cache unless it is there.
func buildApp(version string, broken bool) (string, error) {
	ldflags := "-s -w -X main.version=" + version
	if broken {
		ldflags += " -X main.broken=yes"
	}
	key := sha256.Sum256([]byte(AppSource + "\x00" + ldflags + "\x00" + runtime.GOOS + "/" + runtime.GOARCH))
	cache, err := os.UserCacheDir()
	if err != nil {
		// No home: a directory of this process's own, which nobody
		// removes; it holds the few variants a test binary builds.
		if cache, err = os.MkdirTemp("", "deploytest-"); err != nil {
			return "", err
		}
	}
	dir := filepath.Join(cache, "shuanghuo", "deploytest", hex.EncodeToString(key[:12]))
	out := filepath.Join(dir, "app")
	if fi, err := os.Stat(out); err == nil && fi.Mode().IsRegular() {
		return out, nil
	}
	src, err := os.MkdirTemp("", "deploytest-src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(AppSource), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module testapp\n\ngo 1.22\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Built beside its final name and renamed, so that another test binary
	// building the same variant at once never sees half a file.
	tmp := filepath.Join(dir, fmt.Sprintf("app.%d.tmp", os.Getpid()))
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", tmp, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("%v\n%s", err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return out, nil
}
