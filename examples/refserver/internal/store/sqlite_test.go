package store

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func open(t *testing.T, dir string) *SQLite {
	t.Helper()
	s, err := OpenSQLite(context.Background(), dir, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenAppliesMigrationsOnceWithWALAndForeignKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	v, err := s.SchemaVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, len(migrations)-1, v)

	var mode string
	require.NoError(t, s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode))
	require.Equal(t, "wal", mode)
	var fk int
	require.NoError(t, s.db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk))
	require.Equal(t, 1, fk)

	require.NoError(t, s.Close())
	again := open(t, dir)
	var n int
	require.NoError(t, again.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations").Scan(&n))
	require.Equal(t, len(migrations)-1, n, "reopening must not apply migrations twice")
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	_, err := s.db.ExecContext(ctx, "INSERT INTO schema_migrations(version, applied_at) VALUES (999, 'x')")
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = OpenSQLite(ctx, dir, Options{})
	require.ErrorContains(t, err, "newer than this binary")
}

func TestChangesAreAuditedWithBeforeAndAfter(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	actor := Actor{TokenID: "tk_admin", RequestID: "req-1"}
	require.NoError(t, s.Change(ctx, actor, func(tx Tx) error {
		if _, err := tx.PutTeam(ctx, Team{ID: "tm_1", Name: "开发一组"}); err != nil {
			return err
		}
		_, err := tx.PutProject(ctx, Project{ID: "pj_1", TeamID: "tm_1", Name: "核心经办"})
		return err
	}))
	require.NoError(t, s.Change(ctx, actor, func(tx Tx) error {
		_, err := tx.PutProject(ctx, Project{ID: "pj_1", TeamID: "tm_1", Name: "核心经办", Description: "v2"})
		return err
	}))
	require.NoError(t, s.Change(ctx, actor, func(tx Tx) error { return tx.DeleteProject(ctx, "pj_1") }))

	recs, err := s.Audit(ctx, AuditFilter{Kind: "project", ResourceID: "pj_1"})
	require.NoError(t, err)
	require.Len(t, recs, 3)
	require.Equal(t, []string{"delete", "update", "create"}, []string{recs[0].Action, recs[1].Action, recs[2].Action})
	require.JSONEq(t, "null", string(recs[2].Before))
	var after Project
	require.NoError(t, json.Unmarshal(recs[1].After, &after))
	require.Equal(t, "v2", after.Description)
	var before Project
	require.NoError(t, json.Unmarshal(recs[1].Before, &before))
	require.Equal(t, "", before.Description)
	require.Equal(t, "tm_1", recs[0].TeamID)
	require.Equal(t, "req-1", recs[0].RequestID)
	require.JSONEq(t, "null", string(recs[0].After))
}

func TestFailedChangeLeavesNothingBehind(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	require.NoError(t, s.Change(ctx, Actor{}, func(tx Tx) error {
		_, err := tx.PutTeam(ctx, Team{ID: "tm_1", Name: "a"})
		return err
	}))
	err := s.Change(ctx, Actor{}, func(tx Tx) error {
		if _, err := tx.PutTeam(ctx, Team{ID: "tm_2", Name: "b"}); err != nil {
			return err
		}
		_, err := tx.PutTeam(ctx, Team{ID: "tm_3", Name: "a"})
		return err
	})
	require.ErrorIs(t, err, ErrConflict)
	var teams []Team
	require.NoError(t, s.View(ctx, func(r Reader) (err error) { teams, err = r.Teams(ctx, ""); return err }))
	require.Len(t, teams, 1, "the whole change rolls back, the first put included")
	recs, err := s.Audit(ctx, AuditFilter{})
	require.NoError(t, err)
	require.Len(t, recs, 1, "no audit record for a change that did not happen")
}

func TestTeamWithProjectsCannotBeDeletedAndTokensGoWithTheTeam(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	require.NoError(t, s.Change(ctx, Actor{}, func(tx Tx) error {
		if _, err := tx.PutTeam(ctx, Team{ID: "tm_1", Name: "a"}); err != nil {
			return err
		}
		if _, err := tx.PutToken(ctx, Token{ID: "tk_1", TeamID: "tm_1", Name: "t", Hash: []byte("h")}); err != nil {
			return err
		}
		_, err := tx.PutProject(ctx, Project{ID: "pj_1", TeamID: "tm_1", Name: "p"})
		return err
	}))
	err := s.Change(ctx, Actor{}, func(tx Tx) error { return tx.DeleteTeam(ctx, "tm_1") })
	require.ErrorIs(t, err, ErrConflict)

	require.NoError(t, s.Change(ctx, Actor{}, func(tx Tx) error {
		if err := tx.DeleteProject(ctx, "pj_1"); err != nil {
			return err
		}
		return tx.DeleteTeam(ctx, "tm_1")
	}))
	_, err = s.TokenByHash(ctx, []byte("h"))
	require.ErrorIs(t, err, ErrNotFound)
}

func TestProjectNamesAreUniquePerTeamAndMissingTeamIsRejected(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	put := func(p Project) error {
		return s.Change(ctx, Actor{}, func(tx Tx) error { _, err := tx.PutProject(ctx, p); return err })
	}
	require.NoError(t, s.Change(ctx, Actor{}, func(tx Tx) error {
		for _, id := range []string{"tm_1", "tm_2"} {
			if _, err := tx.PutTeam(ctx, Team{ID: id, Name: id}); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, put(Project{ID: "pj_1", TeamID: "tm_1", Name: "核心经办"}))
	require.NoError(t, put(Project{ID: "pj_2", TeamID: "tm_2", Name: "核心经办"}))
	require.ErrorIs(t, put(Project{ID: "pj_3", TeamID: "tm_1", Name: "核心经办"}), ErrConflict)
	require.ErrorIs(t, put(Project{ID: "pj_4", TeamID: "tm_nope", Name: "x"}), ErrConflict)
	// A project never moves to another team, whatever the caller sends.
	require.NoError(t, put(Project{ID: "pj_1", TeamID: "tm_2", Name: "renamed"}))
	var p Project
	require.NoError(t, s.View(ctx, func(r Reader) (err error) { p, err = r.Project(ctx, "pj_1"); return err }))
	require.Equal(t, "tm_1", p.TeamID)
}

func TestAuditFiltersAndPages(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	for i, team := range []string{"tm_a", "tm_b", "tm_a", "tm_a"} {
		require.NoError(t, s.Change(ctx, Actor{}, func(tx Tx) error {
			if i < 2 {
				_, err := tx.PutTeam(ctx, Team{ID: team, Name: team})
				return err
			}
			_, err := tx.PutTeam(ctx, Team{ID: team, Name: team, Description: string(rune('0' + i))})
			return err
		}))
	}
	page1, err := s.Audit(ctx, AuditFilter{TeamID: "tm_a", Limit: 2})
	require.NoError(t, err)
	require.Len(t, page1, 2)
	page2, err := s.Audit(ctx, AuditFilter{TeamID: "tm_a", Limit: 2, BeforeID: page1[1].ID})
	require.NoError(t, err)
	require.Len(t, page2, 1)
	require.Equal(t, "create", page2[0].Action)
	for _, r := range append(page1, page2...) {
		require.Equal(t, "tm_a", r.TeamID)
	}
	require.ErrorIs(t, s.View(ctx, func(r Reader) error { _, err := r.Team(ctx, "tm_zz"); return err }), ErrNotFound)
}

func TestSettingsAreAudited(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	require.ErrorIs(t, s.View(ctx, func(r Reader) error { _, err := r.Setting(ctx, "dns.views"); return err }), ErrNotFound)
	for _, v := range []string{`[]`, `[{"name":"a"}]`} {
		require.NoError(t, s.Change(ctx, Actor{TokenID: "tk"}, func(tx Tx) error { return tx.PutSetting(ctx, "dns.views", json.RawMessage(v)) }))
	}
	var got json.RawMessage
	require.NoError(t, s.View(ctx, func(r Reader) (err error) { got, err = r.Setting(ctx, "dns.views"); return err }))
	require.JSONEq(t, `[{"name":"a"}]`, string(got))
	recs, err := s.Audit(ctx, AuditFilter{Kind: "setting"})
	require.NoError(t, err)
	require.Len(t, recs, 2)
	require.Equal(t, "update", recs[0].Action)
	require.JSONEq(t, `[]`, string(recs[0].Before))
}

func TestDocsByPrefixInIDOrder(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	for _, id := range []string{"orders/0002", "orders/0001", "payments/0001"} {
		require.NoError(t, s.PutDoc(ctx, "dr.transition", id, json.RawMessage(`"`+id+`"`)))
	}
	require.NoError(t, s.PutDoc(ctx, "dr.transition", "orders/0001", json.RawMessage(`"replaced"`)))
	docs, err := s.Docs(ctx, "dr.transition", "orders/")
	require.NoError(t, err)
	require.Equal(t, []json.RawMessage{json.RawMessage(`"replaced"`), json.RawMessage(`"orders/0002"`)}, docs)
	_, err = s.Doc(ctx, "dr.run", "r1")
	require.ErrorIs(t, err, ErrNotFound)
}

func TestDeleteDoc(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	require.NoError(t, s.PutDoc(ctx, "sync.state", "st_1", json.RawMessage(`{}`)))
	require.NoError(t, s.DeleteDoc(ctx, "sync.state", "st_1"))
	_, err := s.Doc(ctx, "sync.state", "st_1")
	require.ErrorIs(t, err, ErrNotFound)
	require.NoError(t, s.DeleteDoc(ctx, "sync.state", "st_1"), "deleting an absent doc is not an error")
}

// The audit log read as a feed: one kind and project, chosen actions, oldest first after a
// cursor, with the head of what the filter selects; and a commit wakes a waiting reader.
func TestAuditAsFeed(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	var teamID string
	var projects []string
	require.NoError(t, s.Change(ctx, Actor{TokenID: "t"}, func(tx Tx) error {
		team, err := tx.PutTeam(ctx, Team{ID: "tm_1", Name: "yb"})
		teamID = team.ID
		for _, id := range []string{"pj_1", "pj_2"} {
			if _, err := tx.PutProject(ctx, Project{ID: id, TeamID: team.ID, Name: id}); err != nil {
				return err
			}
			projects = append(projects, id)
		}
		return err
	}))
	put := func(id, project, spec string, push bool) {
		woke := s.Committed()
		require.NoError(t, s.Change(ctx, Actor{TokenID: "t"}, func(tx Tx) error {
			r, err := tx.PutResource(ctx, Resource{Kind: "app", ID: id, TeamID: teamID, ProjectID: project, Name: id, Spec: json.RawMessage(spec)})
			if err != nil || !push {
				return err
			}
			return tx.MarkPushed(ctx, "app", id, r.Revision)
		}))
		select {
		case <-woke:
		default:
			t.Fatal("a commit closes the channel Committed returned before it")
		}
	}
	put("a1", "pj_1", `{"v":1}`, true)
	put("a2", "pj_2", `{"v":1}`, true)
	put("a1", "pj_1", `{"v":2}`, false)
	put("a1", "pj_1", `{"v":3}`, true)
	require.NoError(t, s.Change(ctx, Actor{TokenID: "t"}, func(tx Tx) error { return tx.DeleteResource(ctx, "app", "a1") }))

	page, err := s.Feed(ctx, FeedFilter{Kind: "app", Actions: []string{"push", "delete"}, ProjectID: projects[0]})
	require.NoError(t, err)
	recs := page.Records
	require.Len(t, recs, 3)
	var actions []string
	for i, r := range recs {
		actions = append(actions, r.Action)
		if i > 0 {
			require.Greater(t, r.ID, recs[i-1].ID)
		}
	}
	require.Equal(t, []string{"push", "push", "delete"}, actions)
	require.Equal(t, recs[2].ID, page.Head)
	require.EqualValues(t, 3, page.Pending)
	require.Contains(t, string(recs[1].After), `"v":3`)

	// Pending counts past the limit, and only the scope's records: pj_2's push and the
	// unpushed save between recs[0] and recs[1] are not behind.
	more, err := s.Feed(ctx, FeedFilter{Kind: "app", Actions: []string{"push", "delete"}, ProjectID: projects[0], AfterID: recs[0].ID, Limit: 1})
	require.NoError(t, err)
	require.Equal(t, []int64{recs[1].ID}, []int64{more.Records[0].ID})
	require.Equal(t, page.Head, more.Head)
	require.EqualValues(t, 2, more.Pending)
	require.Greater(t, recs[2].ID-recs[0].ID, more.Pending, "IDs between the scope's records belong to others")

	none, err := s.Feed(ctx, FeedFilter{Kind: "app", TeamID: "tm_other"})
	require.NoError(t, err)
	require.Empty(t, none.Records)
	require.Zero(t, none.Head)
	require.Zero(t, none.Pending)
	_, err = s.Feed(ctx, FeedFilter{})
	require.Error(t, err)
}
