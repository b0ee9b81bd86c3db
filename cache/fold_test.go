package cache

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFoldKey(t *testing.T) {
	for key, want := range map[string]string{
		"user:1001:cart":           "user:*:cart",
		"user:1001":                "user:*",
		"config":                   "config",
		"session:9f86d081884c7d65": "session:*",
		"order:550e8400-e29b-41d4-a716-446655440000:items": "order:*:items",
		"token:AbCdEfGhIjKlMn12":                           "token:*",
		"v2:feature":                                       "v*:feature",
		"order_20240101_42":                                "order_*_*",
		"item:12345678":                                    "item:*",
		"cafe:babe":                                        "cafe:babe",
		"deadbeef:1":                                       "deadbeef:*",
		"a:1b2c":                                           "a:*b*c",
		"":                                                 "",
		"中文:123":                                           "中文:*",
	} {
		assert.Equal(t, want, FoldKey(key), key)
	}
}

func TestPrefix(t *testing.T) {
	assert.Equal(t, "user:", Prefix("user:1:cart", ":", 1))
	assert.Equal(t, "user:*:", Prefix("user:1:cart", ":", 2))
	assert.Equal(t, "user:*:cart", Prefix("user:1:cart", ":", 3))
	assert.Equal(t, "counter*", Prefix("counter7", ":", 1))
	assert.Equal(t, "a/", Prefix("a/b", "/", 1))
}
