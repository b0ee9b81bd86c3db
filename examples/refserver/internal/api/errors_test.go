package api

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/internal/jsontime"
)

// A body's field error names its JSON path in the body, indices included, as decodeStrict
// names a spec's (issue 16 item 5).
func TestDecodeErrorNamesTheBodysJSONPath(t *testing.T) {
	type change struct {
		Op  string `json:"op"`
		TTL int    `json:"ttl"`
	}
	type input struct {
		To      string            `json:"to"`
		Changes []change          `json:"changes"`
		Every   jsontime.Duration `json:"every"`
	}
	for body, want := range map[string]map[string]string{
		`{"to":"b","changes":[{"op":"add"},{"op":"add","tll":1}]}`: {"changes[1].tll": "unknown field"},
		`{"changes":[{"ttl":1},{"ttl":"x"}]}`:                      {"changes[1].ttl": "must be a number, got string"},
		`{"every":5}`:                                              {"every": `must be a duration string such as "5s", got number 5`},
		`{"to":1}`:                                                 {"to": "must be a string, got number"},
	} {
		var in input
		dec := json.NewDecoder(bytes.NewReader([]byte(body)))
		dec.DisallowUnknownFields()
		err := dec.Decode(&in)
		require.Error(t, err, body)
		require.Equal(t, want, decodeError(err, []byte(body), &in).Fields, body)
	}
}
