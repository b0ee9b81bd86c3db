package planes

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
)

func TestCenterVariables(t *testing.T) {
	var v centerVars
	require.NoError(t, v.set(map[string]string{"redis": `redis.b.internal:6379`, "quote": `say "hi"`}))
	spec := json.RawMessage(`{"name":"outpatient","ports":[{"port":8085}],"env":{"REDIS":"${center.redis}","Q":"${center.quote}!"},"args":["--r=${center.redis}"],"big":12345678901234567890}`)
	out, err := v.expand(spec)
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(out, &got))
	require.Equal(t, map[string]any{"REDIS": "redis.b.internal:6379", "Q": `say "hi"!`}, got["env"])
	require.Equal(t, []any{"--r=redis.b.internal:6379"}, got["args"])
	require.Contains(t, string(out), "12345678901234567890", "numbers keep their digits")

	same := json.RawMessage(`{"name":"x"}`)
	out, err = v.expand(same)
	require.NoError(t, err)
	require.Equal(t, same, out, "a spec without variables is left as it is")

	_, err = v.expand(json.RawMessage(`{"env":{"DB":"${center.db}"},"args":["${center.redis}","${center.nope}"]}`))
	var inv api.InvalidSpec
	require.ErrorAs(t, err, &inv)
	require.Contains(t, inv["env.DB"], "${center.db}")
	require.Contains(t, inv["args[1]"], "${center.nope}")
	require.Len(t, inv, 2)

	err = v.set(map[string]string{"bad name": "x"})
	require.ErrorAs(t, err, &inv)
	require.Contains(t, inv, "variables.bad name")
	require.Equal(t, map[string]string{"redis": `redis.b.internal:6379`, "quote": `say "hi"`}, v.current(), "a refused set changes nothing")
}
