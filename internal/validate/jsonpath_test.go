package validate

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/internal/jsontime"
)

type pathRule struct {
	Path  string `json:"path"`
	Group string `json:"group"`
}

type pathTLS struct {
	Cert string `json:"cert"`
}

type pathListener struct {
	Name  string     `json:"name"`
	Port  int        `json:"port"`
	Rules []pathRule `json:"rules"`
	TLS   *pathTLS   `json:"tls"`
}

type pathEmbedded struct {
	Note string `json:"note"`
}

type pathSpec struct {
	pathEmbedded
	Name      string                  `json:"name"`
	Listeners []pathListener          `json:"listeners"`
	Labels    map[string]pathTLS      `json:"labels"`
	Interval  jsontime.Duration       `json:"interval"`
	Extra     json.RawMessage         `json:"extra"`
	Any       any                     `json:"any"`
	Skipped   string                  `json:"-"`
	Nested    map[string][]pathListen `json:"nested"`
}

type pathListen struct {
	Every jsontime.Duration `json:"every"`
}

func decodeField(t *testing.T, in string) (string, string) {
	t.Helper()
	var v pathSpec
	dec := json.NewDecoder(bytes.NewReader([]byte(in)))
	dec.DisallowUnknownFields()
	err := dec.Decode(&v)
	require.Error(t, err, in)
	path, msg, ok := DecodeField([]byte(in), &v, err)
	require.True(t, ok, "%s: %v", in, err)
	return path, msg
}

// Each error is named by its JSON path in what was decoded, indices and map keys included.
func TestDecodeFieldNamesTheBodysJSONPath(t *testing.T) {
	for _, tc := range []struct{ in, path, msg string }{
		{`{"nmae":"x"}`, "nmae", "unknown field"},
		{`{"listeners":[{"name":"a"},{"name":"b","prot":1}]}`, "listeners[1].prot", "unknown field"},
		// "name" is a listener's field, but not a rule's: the unknown one is the rule's.
		{`{"listeners":[{"name":"a","rules":[{"path":"/"},{"name":"r"}]}]}`, "listeners[0].rules[1].name", "unknown field"},
		{`{"listeners":[{"tls":{"cert":"c","key":"k"}}]}`, "listeners[0].tls.key", "unknown field"},
		{`{"labels":{"a.b":{"cert":"c","x":1}}}`, `labels["a.b"].x`, "unknown field"},
		{`{"NAME":"x","Note":"n","skipped":1}`, "skipped", "unknown field"},
		{`{"listeners":[{"port":1},{"port":2},{"port":"x"}]}`, "listeners[2].port", "must be a number, got string"},
		{`{"listeners":[{"port":1},{"port":[1]}]}`, "listeners[1].port", "must be a number, got array"},
		{`{"listeners":[{"rules":[{},{"path":{"a":1}}]}]}`, "listeners[0].rules[1].path", "must be a string, got object"},
		{`{"listeners":{"a":1}}`, "listeners", "must be an array, got object"},
		{`{"labels":{"k":{"cert":3}}}`, "labels.k.cert", "must be a string, got number"},
		{`{"interval":5}`, "interval", `must be a duration string such as "5s", got number 5`},
		{`{"nested":{"a":[{"every":"1s"},{"every":"1s"}],"b":[{"every":"1s"},{"every":"nope"}]}}`, "nested.b[1].every",
			`must be a duration string such as "5s", got string "nope"`},
		{`{"extra":{"deep":1},"any":{"x":[1]},"name":5}`, "name", "must be a string, got number"},
	} {
		path, msg := decodeField(t, tc.in)
		require.Equal(t, tc.path, path, tc.in)
		require.Equal(t, tc.msg, msg, tc.in)
	}
}

func TestDecodeFieldIsNotAboutSyntax(t *testing.T) {
	var v pathSpec
	err := json.Unmarshal([]byte(`{"name":`), &v)
	_, _, ok := DecodeField([]byte(`{"name":`), &v, err)
	require.False(t, ok)
}

var index = regexp.MustCompile(`\[[0-9]+\]`)

// Whatever the input, DecodeField ends, and a type error's path is encoding/json's field with
// the indices put back (this type has no map, whose keys encoding/json leaves out).
func FuzzDecodeField(f *testing.F) {
	type rule struct {
		Path string `json:"path"`
		Hits []int  `json:"hits"`
	}
	type listener struct {
		Name  string            `json:"name"`
		Port  int               `json:"port"`
		On    bool              `json:"on"`
		Rules []rule            `json:"rules"`
		Every jsontime.Duration `json:"every"`
	}
	type spec struct {
		Listeners []listener `json:"listeners"`
		One       *listener  `json:"one"`
	}
	// The seeds are in testdata/fuzz/FuzzDecodeField.
	f.Fuzz(func(t *testing.T, data []byte) {
		var v spec
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		err := dec.Decode(&v)
		if err == nil {
			return
		}
		path, _, ok := DecodeField(data, &v, err)
		var te *json.UnmarshalTypeError
		if ok && errors.As(err, &te) && te.Field != "" {
			stripped := index.ReplaceAllString(path, "")
			require.Equal(t, te.Field, stripped, "%s", data)
		}
	})
}
