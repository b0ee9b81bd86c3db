// Package deploytest helps test code that uses package deploy: a small HTTP
// app to deploy (built by the test), an in-memory node driver, a Traffic
// recorder, and TestDriver, the conformance suite every node driver runs.
package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// AppSource is the Go source of the test app. It listens on $PORT and
// serves GET /healthz (200 "ok <version>", or 500 when built broken) and
// GET / ("<version>"). Its arguments change how it behaves:
//
//	-crash        exit 1 at once
//	-ignore-term  ignore SIGTERM (so only SIGKILL stops it)
//	-spawn        start a child process that sleeps, writing its PID to child.pid
//
// It writes its own PID to app.pid in its working directory and exits 0 on
// SIGTERM.
const AppSource = `package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

var version = "dev"
var broken = ""

func main() {
	crash, ignore, spawn, sleep := false, false, false, false
	for _, a := range os.Args[1:] {
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
		err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}()
	<-sig
	fmt.Println("SIGTERM: exiting")
}
`

// BuildApp builds the test app as version into a temporary directory and
// returns the executable's path. broken builds it with a failing health
// check. It needs the go command.
func BuildApp(t testing.TB, version string, broken bool) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(AppSource), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module testapp\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ldflags := "-s -w -X main.version=" + version
	if broken {
		ldflags += " -X main.broken=yes"
	}
	out := filepath.Join(dir, "app")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("deploytest: build the test app: %v\n%s", err, b)
	}
	return out
}
