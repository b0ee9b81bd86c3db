// Package store keeps the reference server's state: teams, projects, API tokens and the
// audit log. Store is the seam where PostgreSQL can follow the embedded SQLite store:
// the API layer sees only this interface.
//
// Every change goes through Store.Change, which runs the mutation and writes its audit
// record in one transaction, so there is never a change without its record or a record
// without its change.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Sentinel errors. Implementations wrap them so callers can map them with errors.Is.
var (
	// ErrNotFound: the resource does not exist (or is not visible to the caller).
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a uniqueness rule was broken (a team or project name already used).
	ErrConflict = errors.New("store: conflict")
)

// Team is a tenant (开发团队): it owns projects and tokens, and sees nothing of other teams.
type Team struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Project (项目) belongs to one team, e.g. 核心经办 or 公共服务.
type Project struct {
	ID          string    `json:"id"`
	TeamID      string    `json:"team_id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Token is an API bearer token. Only the SHA-256 of its secret is stored. A token with an
// empty TeamID is a platform admin token.
type Token struct {
	ID         string     `json:"id"`
	TeamID     string     `json:"team_id,omitempty"`
	Name       string     `json:"name"`
	Hash       []byte     `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// Admin reports whether the token belongs to the platform admin rather than a team.
func (t Token) Admin() bool { return t.TeamID == "" }

// Resource is a capability's configuration document (a balancer, a DNS zone, a DR group):
// the refserver stores it as JSON and pushes it (下发) to the data plane, which validates it
// with the capability package's own rules. Names are unique per kind and team.
type Resource struct {
	Kind   string `json:"kind"`
	ID     string `json:"id"`
	TeamID string `json:"team_id"`
	// ProjectID, when set, is the team's project the resource belongs to.
	ProjectID string          `json:"project_id,omitempty"`
	Name      string          `json:"name"`
	Spec      json.RawMessage `json:"spec"`
	// Revision counts saved changes, from 1.
	Revision int64 `json:"revision"`
	// PushedRevision is the revision last pushed to the data plane, 0 if never, and
	// PushedSpec its spec: what the data plane runs, and what a restart pushes again.
	PushedRevision int64           `json:"pushed_revision"`
	PushedSpec     json.RawMessage `json:"pushed_spec,omitempty"`
	PushedAt       *time.Time      `json:"pushed_at,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
}

// AuditRecord says who changed what, when, and the resource before and after (JSON, null
// for a create's before and a delete's after).
type AuditRecord struct {
	ID         int64           `json:"id"`
	At         time.Time       `json:"at"`
	ActorID    string          `json:"actor_id"`
	ActorTeam  string          `json:"actor_team,omitempty"`
	Action     string          `json:"action"`
	Kind       string          `json:"kind"`
	ResourceID string          `json:"resource_id"`
	TeamID     string          `json:"team_id,omitempty"`
	RequestID  string          `json:"request_id,omitempty"`
	Before     json.RawMessage `json:"before"`
	After      json.RawMessage `json:"after"`
}

// AuditFilter selects audit records; zero fields do not filter. Records come newest first.
type AuditFilter struct {
	TeamID     string
	Kind       string
	ResourceID string
	Since      time.Time
	Until      time.Time
	// BeforeID pages: only records with an ID below it.
	BeforeID int64
	Limit    int
}

// FeedPage is one read of the audit log as a change feed.
type FeedPage struct {
	// Records are the records selected after the cursor, oldest first, up to the limit.
	Records []AuditRecord
	// Head is the ID of the last record selected at all (0 if none).
	Head int64
	// Pending counts the records selected after the cursor, beyond the limit too: how far
	// a reader at the cursor is behind.
	Pending int64
}

// FeedFilter selects audit records of resources as a change feed; zero fields do not
// filter, except Kind, which is required.
type FeedFilter struct {
	Kind string
	// Actions, such as "push" and "delete".
	Actions []string
	TeamID  string
	// ProjectID selects the records of resources of one project (the project_id of the
	// resource after the change, or before it for a delete).
	ProjectID string
	// AfterID is the cursor: only records with a larger ID.
	AfterID int64
	// Limit bounds the records returned; default 100, at most 1000.
	Limit int
}

// Actor is who makes a change; it is written into the audit record.
type Actor struct {
	TokenID   string
	TeamID    string
	RequestID string
}

// Store is the persistence the reference server needs. Implementations must be safe for
// concurrent use.
type Store interface {
	// Change runs fn in one write transaction; the audit records fn adds commit with it.
	// Changes are serialized: within fn, the Store's other writes (PutDoc, DeleteDoc,
	// TouchToken) must be given the context Tx.Context makes, which joins them to the
	// change; otherwise they would wait for it.
	Change(ctx context.Context, actor Actor, fn func(Tx) error) error
	// DeclareSecrets names the secret fields of kind's specs (paths such as "a.password",
	// "items[].token"): they are sealed at rest, opened for readers, and Hidden in the audit
	// log. Values stored before a path was declared are sealed then.
	DeclareSecrets(ctx context.Context, kind string, paths []string) error
	// View runs fn in a read transaction.
	View(ctx context.Context, fn func(Reader) error) error
	// Audit lists audit records.
	Audit(ctx context.Context, f AuditFilter) ([]AuditRecord, error)
	// Feed reads the audit log as a change feed: the records f selects after a cursor,
	// oldest first, with the ID of the last record it selects at all and how many it
	// selects after the cursor. Record IDs grow with each commit, so a reader that resumes
	// after the last ID it saw misses nothing.
	Feed(ctx context.Context, f FeedFilter) (FeedPage, error)
	// Committed returns a channel closed at the next commit of a change, for readers that
	// wait for new records.
	Committed() <-chan struct{}
	// TokenByHash finds a token by the SHA-256 of its secret.
	TokenByHash(ctx context.Context, hash []byte) (Token, error)
	// TouchToken records that a token was used.
	TouchToken(ctx context.Context, id string, at time.Time) error
	// PutDoc stores a data plane's own record (a DR run, a sync transition) under kind and
	// id, replacing one with the same id. Docs are not audited: they are what happened, not
	// changes someone made.
	PutDoc(ctx context.Context, kind, id string, data json.RawMessage) error
	// Doc reads one doc, ErrNotFound if absent.
	Doc(ctx context.Context, kind, id string) (json.RawMessage, error)
	// Docs lists a kind's docs whose id starts with prefix, in id order.
	Docs(ctx context.Context, kind, prefix string) ([]json.RawMessage, error)
	// DeleteDoc deletes one doc; deleting an absent doc is not an error.
	DeleteDoc(ctx context.Context, kind, id string) error
	// Ping checks the store answers.
	Ping(ctx context.Context) error
	// SchemaVersion is the last migration applied.
	SchemaVersion(ctx context.Context) (int, error)
	Close() error
}

// Reader reads within a transaction. List methods take a team ID; empty means all teams.
type Reader interface {
	Team(ctx context.Context, id string) (Team, error)
	Teams(ctx context.Context, teamID string) ([]Team, error)
	Project(ctx context.Context, id string) (Project, error)
	Projects(ctx context.Context, teamID string) ([]Project, error)
	Token(ctx context.Context, id string) (Token, error)
	Tokens(ctx context.Context, teamID string) ([]Token, error)
	Resource(ctx context.Context, kind, id string) (Resource, error)
	// Resources lists a kind's resources, of one team or (teamID "") of all, and of one
	// project or (projectID "") of all.
	Resources(ctx context.Context, kind, teamID, projectID string) ([]Resource, error)
	// Setting reads a platform-wide setting (JSON), ErrNotFound if never set.
	Setting(ctx context.Context, key string) (json.RawMessage, error)
	// AdminTokenCount counts platform admin tokens, so the first start can create one.
	AdminTokenCount(ctx context.Context) (int, error)
}

// Tx changes state. Each Put/Delete records an audit entry with the resource before and after.
type Tx interface {
	Reader
	// Context returns ctx carrying this change: the Store's writes made with it are part of
	// the change (committed or rolled back with it).
	Context(ctx context.Context) context.Context
	PutTeam(ctx context.Context, t Team) (Team, error)
	DeleteTeam(ctx context.Context, id string) error
	PutProject(ctx context.Context, p Project) (Project, error)
	DeleteProject(ctx context.Context, id string) error
	PutToken(ctx context.Context, t Token) (Token, error) // create only
	DeleteToken(ctx context.Context, id string) error
	// PutResource creates or updates a resource; an update bumps its revision. Its team and
	// project never change.
	PutResource(ctx context.Context, r Resource) (Resource, error)
	// MarkPushed records that revision rev, which must be the current one, was pushed to
	// the data plane, audited as a "push" of the resource.
	MarkPushed(ctx context.Context, kind, id string, rev int64) error
	DeleteResource(ctx context.Context, kind, id string) error
	// PutSetting stores a platform-wide setting, audited as kind "setting".
	PutSetting(ctx context.Context, key string, value json.RawMessage) error
	// Record writes an audit record of an operation that is not itself a change of a
	// stored resource, such as a DNS switch; detail is its "after".
	Record(ctx context.Context, action, kind, id, teamID string, detail any) error
}
