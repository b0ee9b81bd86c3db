package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
	"github.com/shuanghuo/shuanghuo/internal/validate"
)

var errPkgInvalid = errors.New("pkg: invalid config")

// pkgInvalid is a capability package's validation error, as lb or dnsctl return it.
func pkgInvalid(field, msg string) error {
	v := &validate.List{Cause: errPkgInvalid}
	v.Add(field, msg)
	return v.Err()
}

// listPlane refuses each widget with a package's validation error, as it is or wrapped.
type listPlane struct{ wrap bool }

func (p listPlane) err(field, msg string) error {
	err := pkgInvalid(field, msg)
	if p.wrap {
		return fmt.Errorf("plane: apply: %w", err)
	}
	return err
}

func (p listPlane) Push(context.Context, store.Resource) error {
	return p.err("listeners[1].port", "is in use")
}
func (listPlane) Remove(context.Context, store.Resource) error { return nil }
func (listPlane) Status(context.Context, store.Resource) (any, error) {
	return nil, nil
}

// A plane (its Check, Push, Admit, Action, Format) may return a package's *validate.List as
// it is or wrapped: the API answers its fields under spec., as it answers an InvalidSpec. A
// Route's, a Setting's and an Action input's are the request's, named as sent.
func TestPackageValidationErrorIsAFieldError(t *testing.T) {
	for _, wrap := range []bool{false, true} {
		t.Run(fmt.Sprintf("wrapped=%v", wrap), func(t *testing.T) {
			f := newFixture(t)
			p := listPlane{wrap: wrap}
			admitted := true
			s := New(Options{Store: f.store, MaxBodyBytes: 4096, Capabilities: []Capability{{
				Kind: "widget", Path: "widgets", IDPrefix: "wg", Plane: p,
				Check: func(spec json.RawMessage) (string, error) {
					var w struct {
						Name  string `json:"name"`
						Size  int    `json:"size"`
						Parts []struct {
							Name string `json:"name"`
							Size int    `json:"size"`
						} `json:"parts"`
					}
					if err := json.Unmarshal(spec, &w); err != nil {
						return "", err
					}
					if w.Size%2 == 0 {
						return "", p.err("size", "must be odd")
					}
					for i, part := range w.Parts {
						if part.Size%2 == 0 {
							return "", p.err(fmt.Sprintf("parts[%d].size", i), "must be odd")
						}
					}
					return w.Name, nil
				},
				Admit: func(context.Context, store.Reader, store.Token, store.Resource) error {
					if admitted {
						return nil
					}
					return p.err("name", "is taken")
				},
				Actions: map[string]Action{"grow": {Input: func() any { return &growInput{} },
					Do: func(context.Context, []store.Resource, any) (map[string]json.RawMessage, any, error) {
						return nil, nil, p.err("size", "cannot grow")
					}}},
				Formats: map[string]Format{"raw": {ContentType: "application/json",
					Encode: func(spec json.RawMessage) ([]byte, error) { return spec, nil },
					Decode: func([]byte, json.RawMessage, url.Values) (json.RawMessage, error) {
						return nil, p.err("items[0].ttl", "must be positive")
					}}},
				Parts: []Part{{Name: "parts", Key: "name"}},
			}}, Settings: []Setting{{Path: "knobs",
				Input:   func() any { return &growInput{} },
				Apply:   func(context.Context, any) error { return p.err("by", "is too much") },
				Current: func() any { return nil },
			}}, Routes: []Route{{Pattern: "POST /api/v1/widgets-upload", Handle: func(*Call) error {
				return p.err("digest", "is required")
			}}}})
			s.SetReady(true)
			f.srv.Config.Handler = s
			tok := f.secret[0]

			want := func(r reply, field, msg string) {
				t.Helper()
				require.Equal(t, 400, r.status, r.raw)
				require.Equal(t, codeValidation, r.errorCode(), r.raw)
				require.Equal(t, map[string]any{field: msg}, r.fields(), r.raw)
			}
			want(f.do("POST", "/api/v1/widgets", tok, `{"spec":{"name":"w","size":2}}`), "spec.size", "must be odd")
			r := f.do("POST", "/api/v1/widgets", tok, `{"spec":{"name":"w","size":1,"parts":[{"name":"a","size":1}]}}`)
			require.Equal(t, 201, r.status, r.raw)
			id := r.body["id"].(string)
			want(f.do("PUT", "/api/v1/widgets/"+id+"/parts/a", tok, `{"size":2}`), "size", "must be odd")
			want(f.do("POST", "/api/v1/widgets/"+id+"/push", tok, ""), "spec.listeners[1].port", "is in use")
			want(f.do("POST", "/api/v1/widgets/"+id+"/grow", tok, `{"by":1}`), "spec.size", "cannot grow")
			want(f.do("PUT", "/api/v1/widgets/"+id+"/raw", tok, "x"), "spec.items[0].ttl", "must be positive")
			admitted = false
			want(f.do("PUT", "/api/v1/widgets/"+id, tok, `{"spec":{"name":"w","size":1}}`), "spec.name", "is taken")
			want(f.do("PUT", "/api/v1/knobs", f.admin, `{"by":1}`), "by", "is too much")
			want(f.do("POST", "/api/v1/widgets-upload", tok, `{}`), "digest", "is required")
		})
	}
}
