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
type Setting struct {
	// Path is the URL below /api/v1, e.g. "dns/views"; it is also the store key.
	Path string
	// Input returns a pointer to the value's type (JSON, validated).
	Input func() any
	// Apply gives the data plane a decoded value; a refused value returns InvalidSpec.
	Apply func(ctx context.Context, value any) error
	// Current reports what the data plane runs.
	Current func() any
}

type settingRoutes struct {
	s  *Server
	st Setting
	mu sync.Mutex
}

func (s *Server) mountSetting(api func(string, func(http.ResponseWriter, *http.Request) error), st Setting) {
	sr := &settingRoutes{s: s, st: st}
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
		var inv InvalidSpec
		// Its store writes, if any, join the change.
		if err := sr.st.Apply(tx.Context(r.Context()), in); errors.As(err, &inv) {
			return fieldError(inv)
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sr.st.Current())
	return nil
}

// restore applies the stored value, if any.
func (sr *settingRoutes) restore(ctx context.Context) error {
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
