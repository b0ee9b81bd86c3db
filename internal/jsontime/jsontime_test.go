package jsontime

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRoundTrip(t *testing.T) {
	b, err := json.Marshal(Duration(1500 * time.Millisecond))
	require.NoError(t, err)
	require.Equal(t, `"1.5s"`, string(b))
	for in, want := range map[string]time.Duration{`"1.5s"`: 1500 * time.Millisecond, `"200ms"`: 200 * time.Millisecond, `"0s"`: 0} {
		var d Duration
		require.NoError(t, json.Unmarshal([]byte(in), &d), in)
		require.Equal(t, want, time.Duration(d), in)
	}
	d := Duration(time.Second)
	require.NoError(t, json.Unmarshal([]byte(`null`), &d))
	require.Equal(t, Duration(time.Second), d, "null leaves the value")
}

// A number is refused, not read as nanoseconds: `"interval": 5` once made a health check
// every 5ns. The error names the field's path.
func TestNumbersAndOtherValuesRefused(t *testing.T) {
	type check struct {
		Interval Duration `json:"interval"`
	}
	type cfg struct {
		Health check `json:"health_check"`
	}
	for in, value := range map[string]string{
		`5`: "number 5", `1.5`: "number 1.5", `true`: "bool", `"soon"`: `string "soon"`, `"2s`: "", `{}`: "object", `[]`: "array",
	} {
		var c cfg
		err := json.Unmarshal([]byte(`{"health_check":{"interval":`+in+`}}`), &c)
		require.Error(t, err, in)
		if value == "" {
			continue // not JSON at all: the syntax error comes first
		}
		var te *json.UnmarshalTypeError
		require.ErrorAs(t, err, &te, in)
		require.Equal(t, "health_check.interval", te.Field, in)
		require.Equal(t, value, te.Value, in)
		require.True(t, IsDuration(te.Type), in)
		require.Zero(t, c.Health.Interval, in)
	}
}

func TestOr(t *testing.T) {
	require.Equal(t, 3*time.Second, Duration(0).Or(3*time.Second))
	require.Equal(t, time.Second, Duration(time.Second).Or(3*time.Second))
	require.Equal(t, "1m30s", Duration(90*time.Second).String())
}
