package drtest

import (
	"context"
	"testing"

	"github.com/shuanghuo/shuanghuo/dr"
)

// The fake must pass the suite it stands in for.
func TestFakeConforms(t *testing.T) {
	TestDriver(t, func(t *testing.T) Group {
		f := NewFake()
		return Group{
			Driver: f,
			Write:  func(_ context.Context, s dr.Side, k, v string) error { return f.Write(s, k, v) },
			Read:   func(_ context.Context, s dr.Side, k string) (string, bool, error) { return f.Read(s, k) },
			Stop: func(_ context.Context, s dr.Side) error {
				f.SetDown(s, true)
				return nil
			},
		}
	})
}
