package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/center"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
)

// demoCenter is one center of the demo: where it listens and what it is called in the seed.
type demoCenter struct {
	name, role, seedName, listen string
}

// demoTeam and demoProjects are the seed's: one development team (a tenant) with the
// medical-insurance projects 核心经办 (core handling) and 公共服务 (public service).
const demoTeam = "医保开发团队"

var demoProjects = []struct{ name, description string }{
	{"核心经办", "core handling: settlement, enrollment, fund accounts"},
	{"公共服务", "public service: the citizens' and hospitals' portal"},
}

// seeded is what the demo prints for a center.
type seeded struct {
	url, adminToken, teamToken string
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("refserver demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	a := fs.String("a", "127.0.0.11:8080", "center A's (生产中心, primary) API `address`")
	b := fs.String("b", "127.0.0.12:8080", "center B's (灾备中心, standby) API `address`")
	dir := fs.String("data-dir", "", "`directory` for both centers' stores; default a fresh temporary one, removed on exit")
	logLevel := fs.String("log-level", "warn", "log `level`: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: refserver demo [flags]\n\nStarts center A and center B in one process, each with its own store, seeded with a demo team\nand the seed's projects, and prints where to look.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "shuanghuo-demo-")
		if err != nil {
			return fmt.Errorf("demo: make data dir: %w", err)
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}
	centers := []demoCenter{
		{name: "a", role: "primary", seedName: "生产中心", listen: *a},
		{name: "b", role: "standby", seedName: "灾备中心", listen: *b},
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		errs = make([]error, len(centers))
		out  = make([]seeded, len(centers))
	)
	for i, dc := range centers {
		cfg := config.Default()
		cfg.Center = config.Center{Name: dc.name, Role: dc.role}
		cfg.Listen = dc.listen
		cfg.DataDir = filepath.Join(*dir, dc.name)
		cfg.LogLevel = *logLevel
		adminToken := api.NewTokenSecret()
		c, err := center.Open(ctx, cfg, center.Options{Logger: newLogger(stderr, cfg), AdminToken: adminToken})
		if err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("demo: center %s: %w", dc.name, err)
		}
		teamToken, err := seedDemo(ctx, c.Store())
		if err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("demo: seed center %s: %w", dc.name, err)
		}
		out[i] = seeded{url: c.URL(), adminToken: adminToken, teamToken: teamToken}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = c.Serve(ctx); errs[i] != nil {
				cancel()
			}
		}()
	}
	fmt.Fprintln(stdout, "shuanghuo demo: two centers on loopback (Ctrl-C stops both)")
	for i, dc := range centers {
		fmt.Fprintf(stdout, "\ncenter %s — %s (%s)\n  API:         %s/api/v1\n  admin token: %s\n  team token:  %s (team %s)\n",
			dc.name, dc.seedName, dc.role, out[i].url, out[i].adminToken, out[i].teamToken, demoTeam)
	}
	fmt.Fprintf(stdout, "\ntry:\n  curl -H 'Authorization: Bearer %s' %s/api/v1/projects\n  curl %s/metrics\n",
		out[0].teamToken, out[0].url, out[0].url)
	wg.Wait()
	return errors.Join(errs...)
}

// seedDemo creates the demo team, its projects and a team token, and returns the token.
func seedDemo(ctx context.Context, st store.Store) (string, error) {
	secret := api.NewTokenSecret()
	err := st.Change(ctx, store.Actor{TokenID: "demo"}, func(tx store.Tx) error {
		team, err := tx.PutTeam(ctx, store.Team{ID: api.NewID("tm"), Name: demoTeam, Description: "demo tenant: one vendor's development team"})
		if err != nil {
			return err
		}
		for _, p := range demoProjects {
			if _, err := tx.PutProject(ctx, store.Project{ID: api.NewID("pj"), TeamID: team.ID, Name: p.name, Description: p.description}); err != nil {
				return err
			}
		}
		_, err = tx.PutToken(ctx, store.Token{ID: api.NewID("tk"), TeamID: team.ID, Name: "demo team token", Hash: api.HashToken(secret)})
		return err
	})
	return secret, err
}
