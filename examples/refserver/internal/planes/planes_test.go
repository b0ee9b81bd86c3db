package planes

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
	"github.com/shuanghuo/shuanghuo/internal/validate"
	"github.com/shuanghuo/shuanghuo/lb"
)

// specFields is the fields of a refused spec, as the API reads them: an api.InvalidSpec or a
// package's validation error.
func specFields(t *testing.T, err error) map[string]string {
	t.Helper()
	var inv api.InvalidSpec
	if errors.As(err, &inv) {
		return inv
	}
	var list *validate.List
	require.ErrorAs(t, err, &list)
	return list.Fields()
}

// decodeStrict names a field by its JSON path in the spec, indices included, as the API
// names a body's fields: issue 16 item 5's cases.
func TestDecodeStrictNamesTheSpecsJSONPath(t *testing.T) {
	for spec, want := range map[string]api.InvalidSpec{
		`{"name":"x","listeners":[{"name":"a"},{"name":"b","prot":1}]}`:             {"listeners[1].prot": "unknown field"},
		`{"name":"x","listeners":[{"port":1},{"port":2},{"port":"x"}]}`:             {"listeners[2].port": "must be a number, got string"},
		`{"groups":[{"name":"g"},{"name":"h","health_check":{"interval":5}}]}`:      {"groups[1].health_check.interval": `must be a duration string such as "5s", got number 5`},
		`{"listeners":[{"name":"a","rules":[{"path":"/","group":"g"},{"nme":1}]}]}`: {"listeners[0].rules[1].nme": "unknown field"},
		`["not an object"]`: {"": "must be an object, got array"},
	} {
		var cfg lb.BalancerConfig
		require.Equal(t, want, decodeStrict(json.RawMessage(spec), &cfg), spec)
	}
}
