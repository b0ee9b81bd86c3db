package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
)

// Setting is a platform-wide piece of a data plane's configuration, such as the DNS views
// (split horizon), that belongs to no team: everyone may read it at GET /api/v1/{path}; the
// admin changes it at PUT /api/v1/{path}. A change is applied to the data plane and stored in
// one step (a refused value changes neither), and applied again after a restart.
//
// A Team setting is the admin's word on one team, such as its grants: it is served at
// /api/v1/teams/{id}/{path}, read by that team and the admin, changed by the admin, and
// stored per team. No data plane runs it: the capabilities read it (TeamSetting) inside the
// transactions that check against it, so nothing is applied or restored.
type Setting struct {
	// Path is the URL below /api/v1 (below /api/v1/teams/{id} for a Team setting), e.g.
	// "dns/views"; it is also the store key.
	Path string
	// Team makes it a setting per team.
	Team bool
	// Input returns a pointer to the value's type (JSON, validated).
	Input func() any
	// Apply gives the data plane a decoded value (checks it, for a Team setting); a refused
	// value returns InvalidSpec or the package's validation error.
	Apply func(ctx context.Context, value any) error
	// Current reports what the data plane runs; unused for a Team setting.
	Current func() any
}

// teamSettingKey is the store key of a Team setting's value for team.
func teamSettingKey(path, team string) string { return "teams/" + team + "/" + path }

// TeamSetting reads team's value of the Team setting at path into v, as stored by the
// admin; v is left as it is if the admin never set it.
func TeamSetting(ctx context.Context, tx store.Reader, path, team string, v any) error {
	raw, err := tx.Setting(ctx, teamSettingKey(path, team))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("api: stored %s of team %s: %w", path, team, err)
	}
	return nil
}

type settingRoutes struct {
	s  *Server
	st Setting
	mu sync.Mutex
}

func (s *Server) mountSetting(api func(string, func(http.ResponseWriter, *http.Request) error), st Setting) {
	sr := &settingRoutes{s: s, st: st}
	if st.Team {
		api("GET /api/v1/teams/{id}/"+st.Path, sr.getTeam)
		api("PUT /api/v1/teams/{id}/"+st.Path, sr.putTeam)
		return
	}
	api("GET /api/v1/"+st.Path, func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, http.StatusOK, st.Current())
		return nil
	})
	api("PUT /api/v1/"+st.Path, sr.put)
	s.settings = append(s.settings, sr)
}

func (sr *settingRoutes) put(w http.ResponseWriter, r *http.Request) error {
	if err := adminOnly(r, "change "+sr.st.Path); err != nil {
		return err
	}
	in := sr.st.Input()
	if err := sr.s.decode(w, r, in); err != nil {
		return err
	}
	raw, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("api: encode %s: %w", sr.st.Path, err)
	}
	sr.mu.Lock()
	defer sr.mu.Unlock()
	err = sr.s.store.Change(r.Context(), sr.s.actor(r), func(tx store.Tx) error {
		if err := tx.PutSetting(r.Context(), sr.st.Path, raw); err != nil {
			return err
		}
		// Its store writes, if any, join the change.
		return inputError(sr.st.Apply(tx.Context(r.Context()), in))
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sr.st.Current())
	return nil
}

func (sr *settingRoutes) getTeam(w http.ResponseWriter, r *http.Request) error {
	team := r.PathValue("id")
	if err := visible(r, "team", team); err != nil {
		return err
	}
	out := sr.st.Input()
	err := sr.s.store.View(r.Context(), func(tx store.Reader) error {
		if _, err := tx.Team(r.Context(), team); err != nil {
			return err
		}
		return TeamSetting(r.Context(), tx, sr.st.Path, team, out)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (sr *settingRoutes) putTeam(w http.ResponseWriter, r *http.Request) error {
	if err := adminOnly(r, "change "+sr.st.Path); err != nil {
		return err
	}
	team := r.PathValue("id")
	in := sr.st.Input()
	if err := sr.s.decode(w, r, in); err != nil {
		return err
	}
	if err := inputError(sr.st.Apply(r.Context(), in)); err != nil {
		return err
	}
	raw, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("api: encode %s: %w", sr.st.Path, err)
	}
	err = sr.s.store.Change(r.Context(), sr.s.actor(r), func(tx store.Tx) error {
		if _, err := tx.Team(r.Context(), team); err != nil {
			return err
		}
		return tx.PutSetting(r.Context(), teamSettingKey(sr.st.Path, team), raw)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, in)
	return nil
}

// restore applies the stored value, if any.
func (sr *settingRoutes) restore(ctx context.Context) error {
	if sr.st.Team {
		return nil
	}
	var raw json.RawMessage
	err := sr.s.store.View(ctx, func(tx store.Reader) (err error) {
		raw, err = tx.Setting(ctx, sr.st.Path)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	in := sr.st.Input()
	if err := json.Unmarshal(raw, in); err != nil {
		return fmt.Errorf("api: stored %s: %w", sr.st.Path, err)
	}
	return sr.st.Apply(ctx, in)
}
