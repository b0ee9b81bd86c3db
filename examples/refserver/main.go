// Command refserver is shuanghuo's reference server: it composes the capability packages into
// a runnable platform with a REST API, an embedded store and a two-center demo.
//
//	refserver [flags]            run one center (see -h for every option)
//	refserver demo [flags]       run center A and center B on loopback with demo data
//	refserver sign [flags] URL   send one request signed as a gateway consumer
//	refserver demo-app [flags]   the demo's outpatient app, which the demo deploys
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/center"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "refserver:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "demo" {
		return runDemo(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "demo-app" {
		// The demo's outpatient app, which the demo deploys as this binary.
		return runDemoApp(ctx, args[1:], stderr)
	}
	if len(args) > 0 && args[0] == "sign" {
		return runSign(ctx, args[1:], stdout, stderr)
	}
	cfg, err := config.Load(args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg)
	c, err := center.Open(ctx, cfg, center.Options{Logger: log, AdminToken: os.Getenv(center.AdminTokenEnv), Out: stdout})
	if err != nil {
		return err
	}
	return c.Serve(ctx)
}

func newLogger(w io.Writer, cfg config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
