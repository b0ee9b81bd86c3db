package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func newSealer(t *testing.T) *Sealer {
	t.Helper()
	key, err := LoadKey("", filepath.Join(t.TempDir(), KeyFile))
	require.NoError(t, err)
	s, err := NewSealer(key)
	require.NoError(t, err)
	return s
}

func TestSealerRefusesWrongKeyBindingAndTampering(t *testing.T) {
	s := newSealer(t)
	sealed, err := s.Seal("s3cret", "drgroup", "dg_1", "a.password")
	require.NoError(t, err)
	require.NotContains(t, sealed, "s3cret")
	plain, err := s.Open(sealed, "drgroup", "dg_1", "a.password")
	require.NoError(t, err)
	require.Equal(t, "s3cret", plain)

	_, err = newSealer(t).Open(sealed, "drgroup", "dg_1", "a.password")
	require.ErrorIs(t, err, ErrSealed, "another key")
	for _, to := range [][]string{{"drgroup", "dg_2", "a.password"}, {"drgroup", "dg_1", "b.password"}, {"deploynode", "dg_1", "a.password"}, {"drgroup", "dg_1a.password"}} {
		_, err = s.Open(sealed, to...)
		require.ErrorIs(t, err, ErrSealed, "bound to %q", to)
	}
	raw, err := base64.StdEncoding.DecodeString(sealed[len(sealedPrefix):])
	require.NoError(t, err)
	for _, i := range []int{0, len(raw) / 2, len(raw) - 1} {
		bad := bytes.Clone(raw)
		bad[i] ^= 1
		_, err = s.Open(sealedPrefix+base64.StdEncoding.EncodeToString(bad), "drgroup", "dg_1", "a.password")
		require.ErrorIs(t, err, ErrSealed, "byte %d flipped", i)
	}
	for _, bad := range []string{"", "s3cret", "v1:", "v1:!!", sealed[len(sealedPrefix):]} {
		_, err = s.Open(bad, "drgroup", "dg_1", "a.password")
		require.ErrorIs(t, err, ErrSealed, "%q", bad)
	}
}

func TestLoadKeyMakesAKeyFileOnlyTheOwnerReads(t *testing.T) {
	file := filepath.Join(t.TempDir(), KeyFile)
	k1, err := LoadKey("", file)
	require.NoError(t, err)
	fi, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	k2, err := LoadKey("", file)
	require.NoError(t, err)
	require.Equal(t, k1, k2, "the file's key is kept")
	_, err = LoadKey("short", file)
	require.ErrorContains(t, err, "32 bytes")
}

func TestSecretPaths(t *testing.T) {
	paths := []string{"a.password", "ssh.password", "items[].token", "tags[]"}
	spec := json.RawMessage(`{"a":{"password":"p1","addr":"x<y"},"b":{"password":"not declared"},"n":1.50,` +
		`"items":[{"token":"t0"},{"token":""},{"x":1}],"tags":["s1",2]}`)
	red := string(Redact(spec, paths))
	require.JSONEq(t, `{"a":{"password":"(hidden)","addr":"x<y"},"b":{"password":"not declared"},"n":1.50,`+
		`"items":[{"token":"(hidden)"},{"token":""},{"x":1}],"tags":["(hidden)",2]}`, red)
	require.Contains(t, red, `1.50`, "numbers are kept as written")
	require.Contains(t, red, `x<y`, "no HTML escaping")
	require.Equal(t, `{"x":1}`, string(Redact(json.RawMessage(`{"x":1}`), paths)), "a spec without secrets is untouched")
	require.Equal(t, `"(hidden)"`, string(Redact(json.RawMessage(`{"a":`), paths)), "what is not JSON is hidden whole")

	require.Equal(t, []string{"a.password", "items[0].token", "tags[0]"}, Placeholders(json.RawMessage(red), paths))

	sent := json.RawMessage(`{"a":{"password":"(hidden)"},"ssh":{"password":"(hidden)"},"items":[{"token":"(hidden)"},{"token":"new"}],"tags":["(hidden)"]}`)
	kept, missing, err := KeepHidden(sent, spec, paths)
	require.NoError(t, err)
	require.JSONEq(t, `{"a":{"password":"p1"},"ssh":{"password":"(hidden)"},"items":[{"token":"t0"},{"token":"new"}],"tags":["s1"]}`, string(kept))
	require.Equal(t, []string{"ssh.password"}, missing, "nothing stored there to keep")
}

// rawDB is the database file and its WAL as on disk.
func rawDB(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	for _, name := range []string{"refserver.db", "refserver.db-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if !os.IsNotExist(err) {
			require.NoError(t, err)
		}
		all = append(all, b...)
	}
	return all
}

// Secrets stored before their path was declared (by an older server) are sealed when it is,
// once; the audit log hides them; readers get them plain; the files are the owner's only.
func TestDeclareSecretsSealsWhatWasStoredPlain(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	actor := Actor{TokenID: "tk"}
	spec := json.RawMessage(`{"name":"g","a":{"password":"plain-Secret-1"}}`)
	require.NoError(t, s.Change(ctx, actor, func(tx Tx) error {
		if _, err := tx.PutTeam(ctx, Team{ID: "tm_1", Name: "t"}); err != nil {
			return err
		}
		if _, err := tx.PutResource(ctx, Resource{Kind: "drgroup", ID: "dg_1", TeamID: "tm_1", Name: "g", Spec: spec}); err != nil {
			return err
		}
		return tx.MarkPushed(ctx, "drgroup", "dg_1", 1)
	}))
	require.True(t, bytes.Contains(rawDB(t, dir), []byte("plain-Secret-1")), "stored plain before the declaration")

	paths := []string{"a.password"}
	require.NoError(t, s.DeclareSecrets(ctx, "drgroup", paths))
	require.False(t, bytes.Contains(rawDB(t, dir), []byte("plain-Secret-1")), "sealed in place")
	read := func(s *SQLite) Resource {
		var r Resource
		require.NoError(t, s.View(ctx, func(rd Reader) (err error) { r, err = rd.Resource(ctx, "drgroup", "dg_1"); return err }))
		return r
	}
	r := read(s)
	require.JSONEq(t, string(spec), string(r.Spec))
	require.JSONEq(t, string(spec), string(r.PushedSpec))
	recs, err := s.Audit(ctx, AuditFilter{Kind: "drgroup"})
	require.NoError(t, err)
	require.Len(t, recs, 2)
	for _, rec := range recs {
		require.NotContains(t, string(rec.Before)+string(rec.After), "plain-Secret-1")
	}
	require.Contains(t, string(recs[0].After), `"password":"(hidden)"`)

	// Later writes are sealed as they are written, and the audit log hides them.
	spec2 := json.RawMessage(`{"name":"g","a":{"password":"plain-Secret-2"}}`)
	require.NoError(t, s.Change(ctx, actor, func(tx Tx) error {
		r.Spec = spec2
		_, err := tx.PutResource(ctx, r)
		return err
	}))
	require.False(t, bytes.Contains(rawDB(t, dir), []byte("plain-Secret-2")))
	recs, err = s.Audit(ctx, AuditFilter{Kind: "drgroup", Limit: 1})
	require.NoError(t, err)
	require.Contains(t, string(recs[0].After), `"password":"(hidden)"`)

	// Declared again after a restart: sealed once, not sealed twice.
	require.NoError(t, s.Close())
	again := open(t, dir)
	require.NoError(t, again.DeclareSecrets(ctx, "drgroup", paths))
	require.JSONEq(t, string(spec2), string(read(again).Spec))
	require.JSONEq(t, string(spec), string(read(again).PushedSpec))

	for _, name := range []string{"refserver.db", "refserver.db-wal", "refserver.db-shm"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), name)
	}
}

// A database made by an older server (0644) is made the owner's only at open, and a new
// data directory is 0700.
func TestOpenMakesTheFilesTheOwnersOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := open(t, dir)
	require.NoError(t, s.Close())
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	require.NoError(t, os.Chmod(filepath.Join(dir, "refserver.db"), 0o644))
	open(t, dir)
	fi, err = os.Stat(filepath.Join(dir, "refserver.db"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}
