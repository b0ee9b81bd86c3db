package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// dbFDs counts this process's open descriptors on the database file itself.
func dbFDs(t *testing.T, dir string) int {
	t.Helper()
	want := filepath.Join(dir, "refserver.db")
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && target == want {
			n++
		}
	}
	return n
}

// A burst of concurrent changes: every one commits (no SQLITE_BUSY reaches a caller), and
// the descriptors on the database stay within the connection pools' bound afterwards.
func TestConcurrentChangesAllCommitWithinThePoolBound(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("no /proc/self/fd")
	}
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	require.NoError(t, s.Change(ctx, Actor{TokenID: "tk"}, func(tx Tx) error {
		_, err := tx.PutTeam(ctx, Team{ID: "tm_1", Name: "t"})
		return err
	}))
	const n = 500
	errs := make(chan error, 2*n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs <- s.Change(ctx, Actor{TokenID: "tk"}, func(tx Tx) error {
				if _, err := tx.Teams(ctx, ""); err != nil {
					return err
				}
				_, err := tx.PutProject(ctx, Project{ID: fmt.Sprintf("pj_%d", i), TeamID: "tm_1", Name: fmt.Sprintf("p%d", i)})
				return err
			})
		}()
		go func() {
			defer wg.Done()
			errs <- s.View(ctx, func(r Reader) error {
				_, err := r.Projects(ctx, "tm_1")
				return err
			})
		}()
	}
	wg.Wait()
	close(errs)
	failed := 0
	var first error
	for err := range errs {
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	require.Zero(t, failed, "first error: %v", first)
	var got int
	require.NoError(t, s.View(ctx, func(r Reader) error {
		ps, err := r.Projects(ctx, "tm_1")
		got = len(ps)
		return err
	}))
	require.Equal(t, n, got)
	require.LessOrEqual(t, dbFDs(t, dir), SQLiteConns, "descriptors on the database: the readers' pool and the one writer")
}

// A doc written inside a change with its context joins the change, rather than waiting for
// the one writer the change holds.
func TestDocWritesJoinTheChangeTheirContextCarries(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := open(t, t.TempDir())
	require.NoError(t, s.PutDoc(ctx, "k", "gone", json.RawMessage(`{}`)))
	err := s.Change(ctx, Actor{TokenID: "tk"}, func(tx Tx) error {
		if err := s.PutDoc(tx.Context(ctx), "k", "kept", json.RawMessage(`{}`)); err != nil {
			return err
		}
		return s.DeleteDoc(tx.Context(ctx), "k", "gone")
	})
	require.NoError(t, err)
	docs, err := s.Docs(ctx, "k", "")
	require.NoError(t, err)
	require.Len(t, docs, 1)

	// Rolled back with the change.
	failed := errors.New("refused")
	err = s.Change(ctx, Actor{TokenID: "tk"}, func(tx Tx) error {
		if err := s.DeleteDoc(tx.Context(ctx), "k", "kept"); err != nil {
			return err
		}
		return failed
	})
	require.ErrorIs(t, err, failed)
	_, err = s.Doc(ctx, "k", "kept")
	require.NoError(t, err)
}
