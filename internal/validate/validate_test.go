package validate

import (
	"errors"
	"testing"

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
