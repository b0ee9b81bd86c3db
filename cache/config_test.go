package cache

import (
	"bytes"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The password and the TLS key appear in none of the ways a Config is
// printed or logged.
func TestConfigKeepsSecretsOut(t *testing.T) {
	cfg := Config{Addr: "127.0.0.1:6379", Username: "ops", Password: "hunter2-secret",
		TLS: &TLSConfig{Key: "-----BEGIN PRIVATE KEY-----key-secret", ServerName: "cache.local"}}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("instance", "cfg", cfg)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("instance", "cfg", &cfg)
	for _, out := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg),
		fmt.Sprintf("%v", &cfg), fmt.Sprintf("%+v", &cfg), logged.String()} {
		assert.NotContains(t, out, "hunter2")
		assert.NotContains(t, out, "key-secret")
		assert.Contains(t, out, "127.0.0.1:6379")
	}
	assert.Equal(t, "redis 127.0.0.1:6379 user ops with password over TLS", cfg.String())
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, (&Config{Addr: "127.0.0.1:6379"}).Validate())
	err := (&Config{Addr: "no-port", DB: -1, Timeout: Duration(time.Nanosecond), ScanRate: -5,
		TLS: &TLSConfig{CA: "not PEM", Key: "k"}}).Validate()
	var v *ValidationError
	require.ErrorAs(t, err, &v)
	assert.ErrorIs(t, err, ErrInvalid)
	f := v.Fields()
	for _, field := range []string{"addr", "db", "timeout", "scan_rate", "tls", "tls.cert"} {
		assert.Contains(t, f, field)
	}
	assert.NotContains(t, err.Error(), `"k"`)

	_, err = New(Config{})
	assert.ErrorIs(t, err, ErrInvalid)
}
