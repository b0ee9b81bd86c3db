// Package planes runs the capability packages' data planes inside the reference server, on
// embedded defaults, behind api.Plane: the server hands them pushed specs and reads their
// status, and never touches them otherwise, so that an agent on another host can later take
// their place.
package planes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
)

// decodeStrict reads a spec into v, refusing unknown fields and trailing data, with errors
// keyed the way the API reports spec fields.
func decodeStrict(spec json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(spec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return api.InvalidSpec{typeErr.Field: fmt.Sprintf("must be a JSON %s, got %s", typeErr.Type.Kind(), typeErr.Value)}
		}
		return api.InvalidSpec{"": err.Error()}
	}
	if dec.More() {
		return api.InvalidSpec{"": "the spec must be exactly one JSON object"}
	}
	return nil
}
