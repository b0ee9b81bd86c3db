package api

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
)

// Tenancy: a team's token sees its own team, projects, tokens and audit records, and nothing
// else; another team's resources answer 404 exactly as missing ones do, so a team cannot even
// learn they exist. Creating and deleting teams is the platform admin's.

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a random identifier such as "pj_k3x9q2m4vb7w".
func NewID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + idEncoding.EncodeToString(b[:])
}

// NewTokenSecret returns a fresh API token secret.
func NewTokenSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return TokenPrefix + idEncoding.EncodeToString(b[:])
}

func (s *Server) actor(r *http.Request) store.Actor {
	t := caller(r.Context())
	return store.Actor{TokenID: t.ID, TeamID: t.TeamID, RequestID: requestID(r.Context())}
}

// scope is the team a caller's lists are limited to: "" (all) for the admin.
func scope(r *http.Request) string { return caller(r.Context()).TeamID }

// visible hides another team's resource behind the same error as a missing one.
func visible(r *http.Request, kind, teamID string) error {
	if t := caller(r.Context()); t.Admin() || t.TeamID == teamID {
		return nil
	}
	return fmt.Errorf("%s: %w", kind, store.ErrNotFound)
}

func adminOnly(r *http.Request, what string) error {
	if !caller(r.Context()).Admin() {
		return newError(http.StatusForbidden, codeForbidden, "only the platform admin may %s", what)
	}
	return nil
}

// ownTeam resolves the team a new resource goes to: a team token's own team when the body
// names none; a named team must exist and be visible, else the field is invalid.
func ownTeam(r *http.Request, tx store.Reader, named string, required bool) (string, error) {
	t := caller(r.Context())
	if named == "" {
		if t.Admin() && required {
			return "", fieldError(map[string]string{"team_id": "is required"})
		}
		return t.TeamID, nil
	}
	if !t.Admin() && named != t.TeamID {
		return "", fieldError(map[string]string{"team_id": "no such team"})
	}
	if _, err := tx.Team(r.Context(), named); errors.Is(err, store.ErrNotFound) {
		return "", fieldError(map[string]string{"team_id": "no such team"})
	} else if err != nil {
		return "", err
	}
	return named, nil
}

// ownProject resolves the team of a new resource that may name a project: the project must be
// visible, and its team is the resource's (a team_id naming another team is invalid).
func ownProject(r *http.Request, tx store.Reader, teamID, projectID string) (string, error) {
	if projectID == "" {
		return ownTeam(r, tx, teamID, true)
	}
	p, err := tx.Project(r.Context(), projectID)
	if err == nil {
		err = visible(r, "project", p.TeamID)
	}
	if errors.Is(err, store.ErrNotFound) {
		return "", fieldError(map[string]string{"project_id": "no such project"})
	}
	if err != nil {
		return "", err
	}
	if teamID != "" && teamID != p.TeamID {
		return "", fieldError(map[string]string{"team_id": "differs from the project's team"})
	}
	return p.TeamID, nil
}

type list[T any] struct {
	Items []T `json:"items"`
}

// Teams.

type teamInput struct {
	Name        string `json:"name" validate:"required,max=64,label"`
	Description string `json:"description" validate:"max=1024"`
}

type teamPatch struct {
	Name        *string `json:"name" validate:"omitempty,max=64,label"`
	Description *string `json:"description" validate:"omitempty,max=1024"`
}

func (s *Server) listTeams(w http.ResponseWriter, r *http.Request) error {
	var out []store.Team
	err := s.store.View(r.Context(), func(tx store.Reader) (err error) {
		out, err = tx.Teams(r.Context(), scope(r))
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[store.Team]{out})
	return nil
}

func (s *Server) createTeam(w http.ResponseWriter, r *http.Request) error {
	if err := adminOnly(r, "create teams"); err != nil {
		return err
	}
	var in teamInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	var out store.Team
	err := s.store.Change(r.Context(), s.actor(r), func(tx store.Tx) (err error) {
		out, err = tx.PutTeam(r.Context(), store.Team{ID: NewID("tm"), Name: in.Name, Description: in.Description})
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *Server) getTeam(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := visible(r, "team", id); err != nil {
		return err
	}
	var out store.Team
	err := s.store.View(r.Context(), func(tx store.Reader) (err error) {
		out, err = tx.Team(r.Context(), id)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) updateTeam(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := visible(r, "team", id); err != nil {
		return err
	}
	var in teamPatch
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	var out store.Team
	err := s.store.Change(r.Context(), s.actor(r), func(tx store.Tx) error {
		t, err := tx.Team(r.Context(), id)
		if err != nil {
			return err
		}
		patch(&t.Name, in.Name)
		patch(&t.Description, in.Description)
		out, err = tx.PutTeam(r.Context(), t)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) deleteTeam(w http.ResponseWriter, r *http.Request) error {
	if err := adminOnly(r, "delete teams"); err != nil {
		return err
	}
	err := s.store.Change(r.Context(), s.actor(r), func(tx store.Tx) error {
		return tx.DeleteTeam(r.Context(), r.PathValue("id"))
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func patch[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// Projects.

type projectInput struct {
	TeamID      string `json:"team_id" validate:"max=64"`
	Name        string `json:"name" validate:"required,max=64,label"`
	Description string `json:"description" validate:"max=1024"`
}

type projectPatch struct {
	Name        *string `json:"name" validate:"omitempty,max=64,label"`
	Description *string `json:"description" validate:"omitempty,max=1024"`
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request) error {
	var out []store.Project
	err := s.store.View(r.Context(), func(tx store.Reader) (err error) {
		out, err = tx.Projects(r.Context(), scope(r))
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[store.Project]{out})
	return nil
}

func (s *Server) createProject(w http.ResponseWriter, r *http.Request) error {
	var in projectInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	var out store.Project
	err := s.store.Change(r.Context(), s.actor(r), func(tx store.Tx) error {
		team, err := ownTeam(r, tx, in.TeamID, true)
		if err != nil {
			return err
		}
		out, err = tx.PutProject(r.Context(), store.Project{ID: NewID("pj"), TeamID: team, Name: in.Name, Description: in.Description})
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// project loads a project the caller may see.
func project(r *http.Request, tx store.Reader) (store.Project, error) {
	p, err := tx.Project(r.Context(), r.PathValue("id"))
	if err != nil {
		return p, err
	}
	return p, visible(r, "project", p.TeamID)
}

func (s *Server) getProject(w http.ResponseWriter, r *http.Request) error {
	var out store.Project
	err := s.store.View(r.Context(), func(tx store.Reader) (err error) {
		out, err = project(r, tx)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) updateProject(w http.ResponseWriter, r *http.Request) error {
	var in projectPatch
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	var out store.Project
	err := s.store.Change(r.Context(), s.actor(r), func(tx store.Tx) error {
		p, err := project(r, tx)
		if err != nil {
			return err
		}
		patch(&p.Name, in.Name)
		patch(&p.Description, in.Description)
		out, err = tx.PutProject(r.Context(), p)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) deleteProject(w http.ResponseWriter, r *http.Request) error {
	err := s.store.Change(r.Context(), s.actor(r), func(tx store.Tx) error {
		p, err := project(r, tx)
		if err != nil {
			return err
		}
		return tx.DeleteProject(r.Context(), p.ID)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Tokens.

type tokenInput struct {
	// TeamID is the team the token acts for; empty from the admin makes an admin token.
	TeamID string `json:"team_id" validate:"max=64"`
	Name   string `json:"name" validate:"required,max=64,label"`
}

// tokenCreated is the only answer that ever holds a token's secret.
type tokenCreated struct {
	Token  store.Token `json:"token"`
	Secret string      `json:"secret"`
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	var out []store.Token
	err := s.store.View(r.Context(), func(tx store.Reader) (err error) {
		out, err = tx.Tokens(r.Context(), scope(r))
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[store.Token]{out})
	return nil
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var in tokenInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	secret := NewTokenSecret()
	var out store.Token
	err := s.store.Change(r.Context(), s.actor(r), func(tx store.Tx) error {
		team, err := ownTeam(r, tx, in.TeamID, false)
		if err != nil {
			return err
		}
		out, err = tx.PutToken(r.Context(), store.Token{ID: NewID("tk"), TeamID: team, Name: in.Name, Hash: HashToken(secret)})
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, tokenCreated{Token: out, Secret: secret})
	return nil
}

func token(r *http.Request, tx store.Reader) (store.Token, error) {
	t, err := tx.Token(r.Context(), r.PathValue("id"))
	if err != nil {
		return t, err
	}
	return t, visible(r, "token", t.TeamID)
}

func (s *Server) getToken(w http.ResponseWriter, r *http.Request) error {
	var out store.Token
	err := s.store.View(r.Context(), func(tx store.Reader) (err error) {
		out, err = token(r, tx)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request) error {
	err := s.store.Change(r.Context(), s.actor(r), func(tx store.Tx) error {
		t, err := token(r, tx)
		if err != nil {
			return err
		}
		return tx.DeleteToken(r.Context(), t.ID)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Audit.

type auditPage struct {
	Items []store.AuditRecord `json:"items"`
	// NextBeforeID continues the listing (?before_id=), absent on the last page.
	NextBeforeID int64 `json:"next_before_id,omitempty"`
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.AuditFilter{TeamID: scope(r), Kind: q.Get("kind"), ResourceID: q.Get("resource_id"), Limit: 100}
	fields := map[string]string{}
	if t := caller(r.Context()); t.Admin() && q.Get("team_id") != "" {
		f.TeamID = q.Get("team_id")
	}
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				fields[name] = fmt.Sprintf("must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", v)
			}
			*dst = t
		}
	}
	if v := q.Get("before_id"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			fields["before_id"] = fmt.Sprintf("must be a positive integer, got %q", v)
		}
		f.BeforeID = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			fields["limit"] = fmt.Sprintf("must be an integer from 1 to 1000, got %q", v)
		}
		f.Limit = n
	}
	for name := range q {
		if !strings.Contains(" kind resource_id team_id since until before_id limit ", " "+name+" ") {
			fields[name] = "unknown query parameter"
		}
	}
	if len(fields) > 0 {
		return fieldError(fields)
	}
	items, err := s.store.Audit(r.Context(), f)
	if err != nil {
		return err
	}
	page := auditPage{Items: items}
	if len(items) == f.Limit {
		page.NextBeforeID = items[len(items)-1].ID
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}
