package validate

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type listener struct {
	Name   string `json:"name" validate:"required,label,max=8"`
	Listen string `json:"listen" validate:"listen_addr"`
	Inner  struct {
		Weight int `json:"weight" validate:"min=1"`
	} `json:"inner"`
}

func TestFieldsAreNamedByTagAndPath(t *testing.T) {
	var l listener
	l.Name, l.Listen = " 门诊", "127.0.0.1:99999"
	fields, err := Fields(New("json"), l)
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		"name":         "must not start or end with spaces or hold control characters",
		"listen":       `must be host:port, got "127.0.0.1:99999"`,
		"inner.weight": "must be at least 1, got 0",
	}, fields)
}

func TestValidValuesPass(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", ":8080", "[::1]:53", "localhost:65535"} {
		l := listener{Name: "门诊结算", Listen: addr}
		l.Inner.Weight = 1
		fields, err := Fields(New("json"), l)
		require.NoError(t, err)
		require.Nil(t, fields, addr)
	}
}

func TestNotAStruct(t *testing.T) {
	_, err := Fields(New("json"), 5)
	require.Error(t, err)
}

func TestDescribeAndAdd(t *testing.T) {
	var fields map[string]string
	Add(&fields, "b.addr", "is required")
	Add(&fields, "a", "too long")
	Add(&fields, "b.addr", "must differ")
	require.Equal(t, "dr: invalid: a: too long; b.addr: is required; must differ", Describe("dr: invalid", fields))
}

func TestStruct(t *testing.T) {
	type spec struct {
		Name string `json:"name" validate:"required"`
	}
	if got := Struct(&spec{Name: "x"}); got != nil {
		t.Fatalf("valid: %v", got)
	}
	if got := Struct(&spec{}); got["name"] == "" || len(got) != 1 {
		t.Fatalf("missing name: %v", got)
	}
	if got := Struct(42); got[""] == "" {
		t.Fatalf("not a struct: %v", got)
	}
}

func TestList(t *testing.T) {
	sentinel := errors.New("pkg: invalid config")
	v := &List{Cause: sentinel}
	if v.Err() != nil {
		t.Fatal("an empty list is no error")
	}
	v.Add("b", "is required")
	v.Add("a", "too long")
	v.Add("b", "must be a name")
	err := v.Err()
	if !errors.Is(err, sentinel) {
		t.Fatalf("does not wrap the sentinel: %v", err)
	}
	if got, want := err.Error(), "pkg: invalid config: a: too long; b: is required; b: must be a name"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if got := v.Fields(); got["b"] != "is required; must be a name" || got["a"] != "too long" || len(got) != 2 {
		t.Fatalf("Fields() = %v", got)
	}
}

func TestDurationRule(t *testing.T) {
	type d time.Duration
	type cfg struct {
		Interval d             `json:"interval" validate:"omitempty,duration=100ms:1h"`
		Timeout  time.Duration `json:"timeout" validate:"duration=1ms:1m"`
	}
	require.Nil(t, Struct(cfg{Timeout: time.Second}))
	require.Nil(t, Struct(cfg{Interval: d(time.Hour), Timeout: time.Millisecond}))
	require.Equal(t, map[string]string{
		"interval": "must be from 100ms to 1h, got 5ns",
		"timeout":  "must be from 1ms to 1m, got 2m0s",
	}, Struct(cfg{Interval: 5, Timeout: 2 * time.Minute}))
	require.Equal(t, map[string]string{"interval": "must be from 100ms to 1h, got -1s"},
		Struct(cfg{Interval: d(-time.Second), Timeout: time.Second}))
	require.Panics(t, func() {
		Struct(struct {
			X time.Duration `validate:"duration=1h"`
		}{})
	})
}
