package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// migrations are applied in order, each once, in its own transaction. Append only: a
// released migration never changes.
var migrations = []string{
	1: `
CREATE TABLE teams (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL UNIQUE,
	description TEXT NOT NULL DEFAULT '',
	created_at  TEXT NOT NULL,
	updated_at  TEXT NOT NULL
);
CREATE TABLE projects (
	id          TEXT PRIMARY KEY,
	team_id     TEXT NOT NULL REFERENCES teams(id) ON DELETE RESTRICT,
	name        TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	created_at  TEXT NOT NULL,
	updated_at  TEXT NOT NULL,
	UNIQUE (team_id, name)
);
CREATE TABLE tokens (
	id           TEXT PRIMARY KEY,
	team_id      TEXT REFERENCES teams(id) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	hash         BLOB NOT NULL UNIQUE,
	created_at   TEXT NOT NULL,
	last_used_at TEXT
);
CREATE TABLE audit (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	at          TEXT NOT NULL,
	actor_id    TEXT NOT NULL,
	actor_team  TEXT NOT NULL DEFAULT '',
	action      TEXT NOT NULL,
	kind        TEXT NOT NULL,
	resource_id TEXT NOT NULL,
	team_id     TEXT NOT NULL DEFAULT '',
	request_id  TEXT NOT NULL DEFAULT '',
	before      TEXT,
	after       TEXT
);
CREATE INDEX audit_team ON audit(team_id, id);
CREATE INDEX audit_resource ON audit(kind, resource_id, id);
`,
	2: `
CREATE TABLE resources (
	kind            TEXT NOT NULL,
	id              TEXT NOT NULL,
	team_id         TEXT NOT NULL REFERENCES teams(id) ON DELETE RESTRICT,
	project_id      TEXT REFERENCES projects(id) ON DELETE RESTRICT,
	name            TEXT NOT NULL,
	spec            TEXT NOT NULL,
	revision        INTEGER NOT NULL,
	pushed_revision INTEGER NOT NULL DEFAULT 0,
	pushed_spec     TEXT,
	pushed_at       TEXT,
	created_at      TEXT NOT NULL,
	updated_at      TEXT NOT NULL,
	PRIMARY KEY (kind, id),
	UNIQUE (kind, team_id, name)
);
CREATE TABLE docs (
	kind       TEXT NOT NULL,
	id         TEXT NOT NULL,
	data       TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	PRIMARY KEY (kind, id)
);
CREATE TABLE settings (
	key        TEXT PRIMARY KEY,
	value      TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
`,
	// The secret paths of each kind whose stored values are sealed (DeclareSecrets seals a
	// path's values once, in the rows and the audit log, and records it here).
	3: `
CREATE TABLE sealed_fields (
	kind      TEXT NOT NULL,
	path      TEXT NOT NULL,
	sealed_at TEXT NOT NULL,
	PRIMARY KEY (kind, path)
);
`,
}

// SQLite is the embedded store: one database file in WAL mode with foreign keys on.
//
// Writes go through one connection, so they queue in Go (in the caller's context) instead
// of meeting SQLite's lock: no SQLITE_BUSY reaches a caller however many write at once.
// Reads use a bounded pool of query-only connections, which WAL lets read while the writer
// writes. A connection costs descriptors and a page cache, so neither pool grows with a
// burst of requests.
type SQLite struct {
	db     *sql.DB // the writer
	read   *sql.DB // the readers
	sealer *Sealer
	now    func() time.Time

	mu        sync.Mutex
	committed chan struct{} // closed and replaced at each commit of a change

	smu     sync.RWMutex
	secrets map[string][]string // declared secret paths by kind
}

// maxReaders bounds the read connections.
const maxReaders = 8

// SQLiteConns bounds the connections a SQLite store holds, each with its descriptor on the
// database file: the readers and the one writer.
const SQLiteConns = maxReaders + 1

// Options configure OpenSQLite.
type Options struct {
	// Key is the secrets key (KeyEnv's value); empty uses KeyFile in the data directory.
	Key string
}

// OpenSQLite opens (creating if needed) the database in dir and applies pending migrations.
// The data directory it creates, the database and its WAL are the server's user's only:
// they hold every team's configuration.
func OpenSQLite(ctx context.Context, dir string, o Options) (*SQLite, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data dir %q: %w", dir, err)
	}
	key, err := LoadKey(o.Key, filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, err
	}
	sealer, err := NewSealer(key)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "refserver.db")
	// SQLite gives the WAL and shared-memory files the database file's mode, so a database
	// created 0600 keeps them 0600 too; one created by an older server is made so.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: create %q: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "synchronous(NORMAL)")
	// Freed space is zeroed: what a row held before it was sealed does not stay in the file.
	q.Add("_pragma", "secure_delete(1)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: open %q: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	s := &SQLite{db: db, sealer: sealer, now: func() time.Time { return time.Now().UTC() }, committed: make(chan struct{}),
		secrets: map[string][]string{}}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	q = url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "query_only(1)")
	if s.read, err = sql.Open("sqlite", "file:"+path+"?"+q.Encode()); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %q: %w", path, err)
	}
	s.read.SetMaxOpenConns(maxReaders)
	s.read.SetMaxIdleConns(maxReaders)
	s.read.SetConnMaxIdleTime(time.Minute)
	return s, nil
}

// Sealer is the store's sealer, for other secrets of the server (the gateway's).
func (s *SQLite) Sealer() *Sealer { return s.sealer }

func (s *SQLite) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("store: create schema_migrations: %w", err)
	}
	current, err := schemaVersion(ctx, s.db)
	if err != nil {
		return err
	}
	if current > len(migrations)-1 {
		return fmt.Errorf("store: database schema version %d is newer than this binary's %d", current, len(migrations)-1)
	}
	for v := current + 1; v < len(migrations); v++ {
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, v, fmtTime(s.now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("store: apply migration %d: %w", v, err)
		}
	}
	return nil
}

// SchemaVersion implements Store.
func (s *SQLite) SchemaVersion(ctx context.Context) (int, error) { return schemaVersion(ctx, s.read) }

func schemaVersion(ctx context.Context, db *sql.DB) (int, error) {
	var v sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: read schema version: %w", err)
	}
	return int(v.Int64), nil
}

func (s *SQLite) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Change implements Store.
func (s *SQLite) Change(ctx context.Context, actor Actor, fn func(Tx) error) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return fn(&sqliteTx{sqliteReader{tx, s}, actor, s.now()})
	})
	if err == nil {
		s.mu.Lock()
		close(s.committed)
		s.committed = make(chan struct{})
		s.mu.Unlock()
	}
	return err
}

// DeclareSecrets implements Store. A path declared for the first time has its values
// sealed in the stored rows and made Hidden in the audit log, in one transaction; then the
// WAL, which held the plain values, is emptied.
func (s *SQLite) DeclareSecrets(ctx context.Context, kind string, paths []string) error {
	s.smu.Lock()
	s.secrets[kind] = slices.Clone(paths)
	s.smu.Unlock()
	sealed := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, p := range paths {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sealed_fields WHERE kind = ? AND path = ?`, kind, p).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				continue
			}
			if err := s.sealStored(ctx, tx, kind, p); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO sealed_fields(kind, path, sealed_at) VALUES (?, ?, ?)`, kind, p, fmtTime(s.now())); err != nil {
				return err
			}
			sealed = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: seal the secrets of %s: %w", kind, err)
	}
	if sealed {
		if _, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			return fmt.Errorf("store: checkpoint after sealing the secrets of %s: %w", kind, err)
		}
	}
	return nil
}

// sealStored seals the plain values at path of kind's stored specs, and hides them in the
// audit records of kind.
func (s *SQLite) sealStored(ctx context.Context, tx *sql.Tx, kind, path string) error {
	type row struct {
		id            string
		spec, pushed  sql.NullString
		before, after sql.NullString
	}
	read := func(q string, scan func(*sql.Rows, *row) error) ([]row, error) {
		rows, err := tx.QueryContext(ctx, q, kind)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []row
		for rows.Next() {
			var r row
			if err := scan(rows, &r); err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, rows.Err()
	}
	paths := []string{path}
	seal := func(id string, v sql.NullString) (sql.NullString, error) {
		if !v.Valid {
			return v, nil
		}
		out, err := s.sealSpec(kind, id, json.RawMessage(v.String), paths)
		return sql.NullString{String: string(out), Valid: true}, err
	}
	res, err := read(`SELECT id, spec, pushed_spec FROM resources WHERE kind = ?`, func(rs *sql.Rows, r *row) error {
		return rs.Scan(&r.id, &r.spec, &r.pushed)
	})
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.spec, err = seal(r.id, r.spec); err != nil {
			return err
		}
		if r.pushed, err = seal(r.id, r.pushed); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE resources SET spec = ?, pushed_spec = ? WHERE kind = ? AND id = ?`, r.spec, r.pushed, kind, r.id); err != nil {
			return err
		}
	}
	// An audit record of a resource holds it whole, its specs under "spec" and "pushed_spec".
	hide := func(v sql.NullString) sql.NullString {
		var m map[string]json.RawMessage
		if !v.Valid || json.Unmarshal([]byte(v.String), &m) != nil || m["spec"] == nil {
			return v // not a resource: an action's record
		}
		for _, k := range []string{"spec", "pushed_spec"} {
			if m[k] != nil {
				m[k] = Redact(m[k], paths)
			}
		}
		out, err := json.Marshal(m)
		if err != nil {
			return v
		}
		return sql.NullString{String: string(out), Valid: true}
	}
	recs, err := read(`SELECT id, before, after FROM audit WHERE kind = ?`, func(rs *sql.Rows, r *row) error {
		return rs.Scan(&r.id, &r.before, &r.after)
	})
	if err != nil {
		return err
	}
	for _, r := range recs {
		if _, err := tx.ExecContext(ctx, `UPDATE audit SET before = ?, after = ? WHERE id = ?`, hide(r.before), hide(r.after), r.id); err != nil {
			return err
		}
	}
	return nil
}

// Committed implements Store.
func (s *SQLite) Committed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.committed
}

// View implements Store.
func (s *SQLite) View(ctx context.Context, fn func(Reader) error) error {
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("store: begin read: %w", err)
	}
	defer tx.Rollback()
	return fn(sqliteReader{tx, s})
}

// Ping implements Store.
func (s *SQLite) Ping(ctx context.Context) error {
	if err := s.read.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Close implements Store.
func (s *SQLite) Close() error { return errors.Join(s.read.Close(), s.db.Close()) }

// TokenByHash implements Store.
func (s *SQLite) TokenByHash(ctx context.Context, hash []byte) (Token, error) {
	return scanToken(s.read.QueryRowContext(ctx, tokenSelect+` WHERE hash = ?`, hash))
}

// TouchToken implements Store.
func (s *SQLite) TouchToken(ctx context.Context, id string, at time.Time) error {
	if _, err := s.exec(ctx, `UPDATE tokens SET last_used_at = ? WHERE id = ?`, fmtTime(at), id); err != nil {
		return fmt.Errorf("store: touch token %s: %w", id, err)
	}
	return nil
}

// PutDoc implements Store.
func (s *SQLite) PutDoc(ctx context.Context, kind, id string, data json.RawMessage) error {
	_, err := s.exec(ctx, `INSERT INTO docs(kind, id, data, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(kind, id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`, kind, id, string(data), fmtTime(s.now()))
	if err != nil {
		return fmt.Errorf("store: write %s %s: %w", kind, id, err)
	}
	return nil
}

// Doc implements Store.
func (s *SQLite) Doc(ctx context.Context, kind, id string) (json.RawMessage, error) {
	var data string
	if err := s.read.QueryRowContext(ctx, `SELECT data FROM docs WHERE kind = ? AND id = ?`, kind, id).Scan(&data); err != nil {
		return nil, notFound(kind+" "+id, err)
	}
	return json.RawMessage(data), nil
}

// DeleteDoc implements Store.
func (s *SQLite) DeleteDoc(ctx context.Context, kind, id string) error {
	if _, err := s.exec(ctx, `DELETE FROM docs WHERE kind = ? AND id = ?`, kind, id); err != nil {
		return fmt.Errorf("store: delete %s %s: %w", kind, id, err)
	}
	return nil
}

// Docs implements Store.
func (s *SQLite) Docs(ctx context.Context, kind, prefix string) ([]json.RawMessage, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT data FROM docs WHERE kind = ? AND substr(id, 1, ?) = ? ORDER BY id`, kind, len(prefix), prefix)
	return scanAll(rows, err, func(row scanner) (json.RawMessage, error) {
		var data string
		if err := row.Scan(&data); err != nil {
			return nil, fmt.Errorf("store: scan %s: %w", kind, err)
		}
		return json.RawMessage(data), nil
	})
}

// Feed implements Store.
func (s *SQLite) Feed(ctx context.Context, f FeedFilter) (FeedPage, error) {
	if f.Kind == "" {
		return FeedPage{}, errors.New("store: a feed needs a kind")
	}
	where := ` FROM audit WHERE kind = ?`
	args := []any{f.Kind}
	if len(f.Actions) > 0 {
		where += ` AND action IN (?` + strings.Repeat(`, ?`, len(f.Actions)-1) + `)`
		for _, a := range f.Actions {
			args = append(args, a)
		}
	}
	if f.TeamID != "" {
		where += ` AND team_id = ?`
		args = append(args, f.TeamID)
	}
	if f.ProjectID != "" {
		where += ` AND json_extract(COALESCE(after, before), '$.project_id') = ?`
		args = append(args, f.ProjectID)
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	// One read transaction, so that the head and the count are of the records read.
	var page FeedPage
	err := s.View(ctx, func(r Reader) error {
		tx := r.(sqliteReader).tx
		var head sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(id)`+where, args...).Scan(&head); err != nil {
			return fmt.Errorf("store: read feed head: %w", err)
		}
		page.Head = head.Int64
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*)`+where+` AND id > ?`, append(args, f.AfterID)...).Scan(&page.Pending); err != nil {
			return fmt.Errorf("store: count the feed: %w", err)
		}
		rows, err := tx.QueryContext(ctx, auditSelect+where+` AND id > ? ORDER BY id LIMIT ?`, append(args, f.AfterID, limit)...)
		if err != nil {
			return fmt.Errorf("store: read feed: %w", err)
		}
		page.Records, err = scanAudit(rows)
		return err
	})
	return page, err
}

const auditSelect = `SELECT id, at, actor_id, actor_team, action, kind, resource_id, team_id, request_id, before, after`

// Audit implements Store.
func (s *SQLite) Audit(ctx context.Context, f AuditFilter) ([]AuditRecord, error) {
	q := auditSelect + ` FROM audit WHERE 1=1`
	var args []any
	add := func(cond string, v any) {
		q += " AND " + cond
		args = append(args, v)
	}
	if f.TeamID != "" {
		add("team_id = ?", f.TeamID)
	}
	if f.Kind != "" {
		add("kind = ?", f.Kind)
	}
	if f.ResourceID != "" {
		add("resource_id = ?", f.ResourceID)
	}
	if !f.Since.IsZero() {
		add("at >= ?", fmtTime(f.Since))
	}
	if !f.Until.IsZero() {
		add("at < ?", fmtTime(f.Until))
	}
	if f.BeforeID > 0 {
		add("id < ?", f.BeforeID)
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: query audit: %w", err)
	}
	return scanAudit(rows)
}

func scanAudit(rows *sql.Rows) ([]AuditRecord, error) {
	defer rows.Close()
	out := []AuditRecord{}
	for rows.Next() {
		var r AuditRecord
		var at string
		var before, after sql.NullString
		if err := rows.Scan(&r.ID, &at, &r.ActorID, &r.ActorTeam, &r.Action, &r.Kind, &r.ResourceID, &r.TeamID, &r.RequestID, &before, &after); err != nil {
			return nil, fmt.Errorf("store: scan audit: %w", err)
		}
		r.At = parseTime(at)
		r.Before = nullJSON(before)
		r.After = nullJSON(after)
		out = append(out, r)
	}
	return out, rows.Err()
}

func nullJSON(s sql.NullString) json.RawMessage {
	if !s.Valid {
		return json.RawMessage("null")
	}
	return json.RawMessage(s.String)
}

// sqliteReader runs reads on a transaction; s opens the secrets of the resources read.
type sqliteReader struct {
	tx *sql.Tx
	s  *SQLite
}

const (
	teamSelect     = `SELECT id, name, description, created_at, updated_at FROM teams`
	projectSelect  = `SELECT id, team_id, name, description, created_at, updated_at FROM projects`
	resourceSelect = `SELECT kind, id, team_id, COALESCE(project_id, ''), name, spec, revision, pushed_revision, pushed_spec, pushed_at, created_at, updated_at FROM resources`
	tokenSelect    = `SELECT id, COALESCE(team_id, ''), name, hash, created_at, last_used_at FROM tokens`
)

type scanner interface{ Scan(...any) error }

func scanTeam(row scanner) (Team, error) {
	var t Team
	var c, u string
	if err := row.Scan(&t.ID, &t.Name, &t.Description, &c, &u); err != nil {
		return Team{}, notFound("team", err)
	}
	t.CreatedAt, t.UpdatedAt = parseTime(c), parseTime(u)
	return t, nil
}

func scanProject(row scanner) (Project, error) {
	var p Project
	var c, u string
	if err := row.Scan(&p.ID, &p.TeamID, &p.Name, &p.Description, &c, &u); err != nil {
		return Project{}, notFound("project", err)
	}
	p.CreatedAt, p.UpdatedAt = parseTime(c), parseTime(u)
	return p, nil
}

func scanToken(row scanner) (Token, error) {
	var t Token
	var c string
	var used sql.NullString
	if err := row.Scan(&t.ID, &t.TeamID, &t.Name, &t.Hash, &c, &used); err != nil {
		return Token{}, notFound("token", err)
	}
	t.CreatedAt = parseTime(c)
	if used.Valid {
		at := parseTime(used.String)
		t.LastUsedAt = &at
	}
	return t, nil
}

func (rd sqliteReader) scanResource(row scanner) (Resource, error) {
	var r Resource
	var spec, c, u string
	var pushed, pushedSpec sql.NullString
	if err := row.Scan(&r.Kind, &r.ID, &r.TeamID, &r.ProjectID, &r.Name, &spec, &r.Revision, &r.PushedRevision, &pushedSpec, &pushed, &c, &u); err != nil {
		return Resource{}, notFound("resource", err)
	}
	var err error
	if r.Spec, err = rd.s.openSpec(r.Kind, r.ID, json.RawMessage(spec)); err != nil {
		return Resource{}, err
	}
	if pushedSpec.Valid {
		if r.PushedSpec, err = rd.s.openSpec(r.Kind, r.ID, json.RawMessage(pushedSpec.String)); err != nil {
			return Resource{}, err
		}
	}
	r.CreatedAt, r.UpdatedAt = parseTime(c), parseTime(u)
	if pushed.Valid {
		at := parseTime(pushed.String)
		r.PushedAt = &at
	}
	return r, nil
}

func notFound(kind string, err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", kind, ErrNotFound)
	}
	return fmt.Errorf("store: read %s: %w", kind, err)
}

func scanAll[T any](rows *sql.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, fmt.Errorf("store: query: %w", err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// teamFilter returns a WHERE clause limiting rows to teamID, or none for "".
func teamFilter(column, teamID string) (string, []any) {
	if teamID == "" {
		return "", nil
	}
	return " WHERE " + column + " = ?", []any{teamID}
}

func (r sqliteReader) Team(ctx context.Context, id string) (Team, error) {
	return scanTeam(r.tx.QueryRowContext(ctx, teamSelect+` WHERE id = ?`, id))
}

func (r sqliteReader) Teams(ctx context.Context, teamID string) ([]Team, error) {
	where, args := teamFilter("id", teamID)
	rows, err := r.tx.QueryContext(ctx, teamSelect+where+` ORDER BY name`, args...)
	return scanAll(rows, err, scanTeam)
}

func (r sqliteReader) Project(ctx context.Context, id string) (Project, error) {
	return scanProject(r.tx.QueryRowContext(ctx, projectSelect+` WHERE id = ?`, id))
}

func (r sqliteReader) Projects(ctx context.Context, teamID string) ([]Project, error) {
	where, args := teamFilter("team_id", teamID)
	rows, err := r.tx.QueryContext(ctx, projectSelect+where+` ORDER BY team_id, name`, args...)
	return scanAll(rows, err, scanProject)
}

func (r sqliteReader) Token(ctx context.Context, id string) (Token, error) {
	return scanToken(r.tx.QueryRowContext(ctx, tokenSelect+` WHERE id = ?`, id))
}

func (r sqliteReader) Tokens(ctx context.Context, teamID string) ([]Token, error) {
	where, args := teamFilter("team_id", teamID)
	rows, err := r.tx.QueryContext(ctx, tokenSelect+where+` ORDER BY created_at, id`, args...)
	return scanAll(rows, err, scanToken)
}

func (r sqliteReader) Resource(ctx context.Context, kind, id string) (Resource, error) {
	res, err := r.scanResource(r.tx.QueryRowContext(ctx, resourceSelect+` WHERE kind = ? AND id = ?`, kind, id))
	if errors.Is(err, ErrNotFound) {
		return res, fmt.Errorf("%s: %w", kind, ErrNotFound)
	}
	return res, err
}

func (r sqliteReader) Resources(ctx context.Context, kind, teamID, projectID string) ([]Resource, error) {
	q, args := resourceSelect+` WHERE kind = ?`, []any{kind}
	if teamID != "" {
		q, args = q+` AND team_id = ?`, append(args, teamID)
	}
	if projectID != "" {
		q, args = q+` AND project_id = ?`, append(args, projectID)
	}
	rows, err := r.tx.QueryContext(ctx, q+` ORDER BY team_id, name`, args...)
	return scanAll(rows, err, r.scanResource)
}

func (r sqliteReader) Setting(ctx context.Context, key string) (json.RawMessage, error) {
	var v string
	if err := r.tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v); err != nil {
		return nil, notFound("setting "+key, err)
	}
	return json.RawMessage(v), nil
}

func (r sqliteReader) AdminTokenCount(ctx context.Context) (int, error) {
	var n int
	if err := r.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM tokens WHERE team_id IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count admin tokens: %w", err)
	}
	return n, nil
}

// txKey keys the change a context belongs to (Tx.Context).
type txKey struct{}

// Context implements Tx.
func (t *sqliteTx) Context(ctx context.Context) context.Context {
	return context.WithValue(ctx, txKey{}, t)
}

// exec runs a write outside Store.Change on the writer, or in the change ctx belongs to:
// the writer is that change's, so the write would wait for it forever.
func (s *SQLite) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if t, ok := ctx.Value(txKey{}).(*sqliteTx); ok && t.s == s {
		return t.tx.ExecContext(ctx, q, args...)
	}
	return s.db.ExecContext(ctx, q, args...)
}

// sqliteTx writes and audits each change in the enclosing transaction.
type sqliteTx struct {
	sqliteReader
	actor Actor
	now   time.Time
}

// audit writes one record; before or after is nil for a create or a delete.
func (t *sqliteTx) audit(ctx context.Context, action, kind, id, teamID string, before, after any) error {
	b, err := jsonOrNull(before)
	if err != nil {
		return err
	}
	a, err := jsonOrNull(after)
	if err != nil {
		return err
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO audit(at, actor_id, actor_team, action, kind, resource_id, team_id, request_id, before, after)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		fmtTime(t.now), t.actor.TokenID, t.actor.TeamID, action, kind, id, teamID, t.actor.RequestID, b, a)
	if err != nil {
		return fmt.Errorf("store: write audit for %s %s: %w", kind, id, err)
	}
	return nil
}

func jsonOrNull(v any) (sql.NullString, error) {
	if v == nil {
		return sql.NullString{}, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return sql.NullString{}, fmt.Errorf("store: encode audit value: %w", err)
	}
	return sql.NullString{String: string(b), Valid: true}, nil
}

// lookup loads the current row, reporting found=false rather than ErrNotFound.
func lookup[T any](ctx context.Context, load func(context.Context, string) (T, error), id string) (old T, found bool, err error) {
	old, err = load(ctx, id)
	switch {
	case err == nil:
		return old, true, nil
	case errors.Is(err, ErrNotFound):
		return old, false, nil
	default:
		return old, false, err
	}
}

// audited records a create (found=false) or an update of a row written with after.
func audited[T any](ctx context.Context, t *sqliteTx, kind, id, teamID string, found bool, before, after T) error {
	if found {
		return t.audit(ctx, "update", kind, id, teamID, before, after)
	}
	return t.audit(ctx, "create", kind, id, teamID, nil, after)
}

// del deletes a row by id and audits it with its last state.
func del[T any](ctx context.Context, t *sqliteTx, kind, table, id string, load func(context.Context, string) (T, error), teamOf func(T) string) error {
	old, err := load(ctx, id)
	if err != nil {
		return err
	}
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE id = ?`, id); err != nil {
		return constraint(kind, id, err)
	}
	return t.audit(ctx, "delete", kind, id, teamOf(old), old, nil)
}

func constraint(kind, id string, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%s %s: name already in use: %w", kind, id, ErrConflict)
		default:
			// Foreign keys: RESTRICT on delete reports as a trigger, a missing parent as FOREIGNKEY.
			return fmt.Errorf("%s %s: still referenced, or refers to something missing: %w", kind, id, ErrConflict)
		}
	}
	return fmt.Errorf("store: write %s %s: %w", kind, id, err)
}

func (t *sqliteTx) PutTeam(ctx context.Context, v Team) (Team, error) {
	old, found, err := lookup(ctx, t.Team, v.ID)
	if err != nil {
		return Team{}, err
	}
	v.CreatedAt, v.UpdatedAt = t.now, t.now
	if found {
		v.CreatedAt = old.CreatedAt
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO teams(id, name, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET name = excluded.name, description = excluded.description, updated_at = excluded.updated_at`,
		v.ID, v.Name, v.Description, fmtTime(v.CreatedAt), fmtTime(v.UpdatedAt))
	if err != nil {
		return Team{}, constraint("team", v.ID, err)
	}
	return v, audited(ctx, t, "team", v.ID, v.ID, found, old, v)
}

func (t *sqliteTx) DeleteTeam(ctx context.Context, id string) error {
	return del(ctx, t, "team", "teams", id, t.Team, func(v Team) string { return v.ID })
}

// PutProject creates or updates a project; a project never moves to another team.
func (t *sqliteTx) PutProject(ctx context.Context, v Project) (Project, error) {
	old, found, err := lookup(ctx, t.Project, v.ID)
	if err != nil {
		return Project{}, err
	}
	v.CreatedAt, v.UpdatedAt = t.now, t.now
	if found {
		v.CreatedAt, v.TeamID = old.CreatedAt, old.TeamID
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO projects(id, team_id, name, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET name = excluded.name, description = excluded.description, updated_at = excluded.updated_at`,
		v.ID, v.TeamID, v.Name, v.Description, fmtTime(v.CreatedAt), fmtTime(v.UpdatedAt))
	if err != nil {
		return Project{}, constraint("project", v.ID, err)
	}
	return v, audited(ctx, t, "project", v.ID, v.TeamID, found, old, v)
}

func (t *sqliteTx) DeleteProject(ctx context.Context, id string) error {
	return del(ctx, t, "project", "projects", id, t.Project, func(v Project) string { return v.TeamID })
}

// PutToken creates a token; tokens are immutable apart from their last use.
func (t *sqliteTx) PutToken(ctx context.Context, v Token) (Token, error) {
	v.CreatedAt = t.now
	var team any
	if v.TeamID != "" {
		team = v.TeamID
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO tokens(id, team_id, name, hash, created_at) VALUES (?, ?, ?, ?, ?)`,
		v.ID, team, v.Name, v.Hash, fmtTime(v.CreatedAt))
	if err != nil {
		return Token{}, constraint("token", v.ID, err)
	}
	return v, t.audit(ctx, "create", "token", v.ID, v.TeamID, nil, v)
}

func (t *sqliteTx) DeleteToken(ctx context.Context, id string) error {
	return del(ctx, t, "token", "tokens", id, t.Token, func(v Token) string { return v.TeamID })
}

func (t *sqliteTx) PutResource(ctx context.Context, v Resource) (Resource, error) {
	old, found, err := lookup(ctx, func(ctx context.Context, id string) (Resource, error) { return t.Resource(ctx, v.Kind, id) }, v.ID)
	if err != nil {
		return Resource{}, err
	}
	v.CreatedAt, v.UpdatedAt, v.Revision, v.PushedRevision, v.PushedSpec, v.PushedAt = t.now, t.now, 1, 0, nil, nil
	if found {
		v.CreatedAt, v.TeamID, v.ProjectID, v.Revision = old.CreatedAt, old.TeamID, old.ProjectID, old.Revision+1
		v.PushedRevision, v.PushedSpec, v.PushedAt = old.PushedRevision, old.PushedSpec, old.PushedAt
	}
	var project any
	if v.ProjectID != "" {
		project = v.ProjectID
	}
	sealed, err := t.s.sealSpec(v.Kind, v.ID, v.Spec, t.s.secretPaths(v.Kind))
	if err != nil {
		return Resource{}, err
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO resources(kind, id, team_id, project_id, name, spec, revision, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(kind, id) DO UPDATE SET name = excluded.name, spec = excluded.spec, revision = excluded.revision, updated_at = excluded.updated_at`,
		v.Kind, v.ID, v.TeamID, project, v.Name, string(sealed), v.Revision, fmtTime(v.CreatedAt), fmtTime(v.UpdatedAt))
	if err != nil {
		return Resource{}, constraint(v.Kind, v.ID, err)
	}
	return v, audited(ctx, t, v.Kind, v.ID, v.TeamID, found, t.s.redacted(old), t.s.redacted(v))
}

func (t *sqliteTx) MarkPushed(ctx context.Context, kind, id string, rev int64) error {
	old, err := t.Resource(ctx, kind, id)
	if err != nil {
		return err
	}
	if rev != old.Revision {
		return fmt.Errorf("%s %s: revision %d was pushed but %d is current: %w", kind, id, rev, old.Revision, ErrConflict)
	}
	if _, err := t.tx.ExecContext(ctx, `UPDATE resources SET pushed_revision = ?, pushed_spec = spec, pushed_at = ? WHERE kind = ? AND id = ?`,
		rev, fmtTime(t.now), kind, id); err != nil {
		return fmt.Errorf("store: mark %s %s pushed: %w", kind, id, err)
	}
	after := old
	after.PushedRevision, after.PushedSpec, after.PushedAt = rev, old.Spec, &t.now
	return t.audit(ctx, "push", kind, id, old.TeamID, t.s.redacted(old), t.s.redacted(after))
}

func (t *sqliteTx) DeleteResource(ctx context.Context, kind, id string) error {
	old, err := t.Resource(ctx, kind, id)
	if err != nil {
		return err
	}
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM resources WHERE kind = ? AND id = ?`, kind, id); err != nil {
		return constraint(kind, id, err)
	}
	return t.audit(ctx, "delete", kind, id, old.TeamID, t.s.redacted(old), nil)
}

func (t *sqliteTx) PutSetting(ctx context.Context, key string, value json.RawMessage) error {
	old, err := t.Setting(ctx, key)
	found := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO settings(key, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, key, string(value), fmtTime(t.now)); err != nil {
		return fmt.Errorf("store: write setting %s: %w", key, err)
	}
	return audited(ctx, t, "setting", key, "", found, old, value)
}

func (t *sqliteTx) Record(ctx context.Context, action, kind, id, teamID string, detail any) error {
	return t.audit(ctx, action, kind, id, teamID, nil, detail)
}

const timeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// fmtTime writes fixed-width UTC times so that text order is time order.
func fmtTime(t time.Time) string { return t.UTC().Format(timeFormat) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

var _ Store = (*SQLite)(nil)
