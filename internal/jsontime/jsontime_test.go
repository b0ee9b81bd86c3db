package jsontime

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRoundTripAndErrors(t *testing.T) {
	b, err := Marshal(1500 * time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, `"1.5s"`, string(b))
	for in, want := range map[string]time.Duration{`"1.5s"`: 1500 * time.Millisecond, `"200ms"`: 200 * time.Millisecond, `1000`: time.Microsecond} {
		d, err := Unmarshal("lb", []byte(in))
		require.NoError(t, err, in)
		require.Equal(t, want, d, in)
	}
	for _, in := range []string{`"soon"`, `true`, `"2s`, `1.5`} {
		_, err := Unmarshal("dr", []byte(in))
		require.ErrorContains(t, err, "dr: duration", in)
	}
}
