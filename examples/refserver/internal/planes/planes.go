// Package planes runs the capability packages' data planes inside the reference server, on
// embedded defaults, behind api.Plane: the server hands them pushed specs and reads their
// status, and never touches them otherwise, so that an agent on another host can later take
// their place.
package planes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
	"github.com/shuanghuo/shuanghuo/internal/validate"
	"github.com/shuanghuo/shuanghuo/lb"
)

// The planes return the capability packages' validation errors (*validate.List) as they are:
// the API answers their fields. What follows gives other errors a field.

// listenError reports a port that cannot be opened (in use, say) against the spec's
// listeners, for balancers and gateways.
func listenError(err error) error {
	if errors.Is(err, lb.ErrListen) {
		return api.InvalidSpec{"listeners": err.Error()}
	}
	return err
}

// mergeFields puts the fields of err, a package's validation error, into fields, replacing
// the plane's own message of a field; another error is returned.
func mergeFields(fields map[string]string, err error) error {
	var verr *validate.List
	if !errors.As(err, &verr) {
		return err
	}
	for k, v := range verr.Fields() {
		fields[k] = v
	}
	return nil
}

// keepPushed saves the specs a data plane already runs after a DR plan's step changed them
// (DNS switched, traffic moved) as new revisions marked pushed, each with an audit record of
// the step, so that a restart does not undo the step.
func keepPushed(ctx context.Context, st store.Store, kind string, specs map[string]json.RawMessage, action string, detail any) error {
	if len(specs) == 0 {
		return nil
	}
	return st.Change(ctx, store.Actor{TokenID: "dr"}, func(tx store.Tx) error {
		for id, spec := range specs {
			res, err := tx.Resource(ctx, kind, id)
			if err != nil {
				return err
			}
			res.Spec = spec
			saved, err := tx.PutResource(ctx, res)
			if err != nil {
				return err
			}
			if err := tx.MarkPushed(ctx, kind, id, saved.Revision); err != nil {
				return err
			}
			if err := tx.Record(ctx, action, kind, id, res.TeamID, detail); err != nil {
				return err
			}
		}
		return nil
	})
}

// decodeStrict reads a spec into v, refusing unknown fields and trailing data, with errors
// keyed by their JSON path in the spec, as the API's own decoding names a body's fields.
func decodeStrict(spec json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(spec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if path, msg, ok := validate.DecodeField(spec, v, err); ok {
			return api.InvalidSpec{path: msg}
		}
		return api.InvalidSpec{"": err.Error()}
	}
	if dec.More() {
		return api.InvalidSpec{"": "the spec must be exactly one JSON object"}
	}
	return nil
}
