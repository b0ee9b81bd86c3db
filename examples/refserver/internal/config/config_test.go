package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDefaultsAreValid(t *testing.T) {
	cfg, err := Load(nil, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, Default(), cfg)
}

func TestFlagsOverrideTheFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "b.yaml")
	require.NoError(t, os.WriteFile(file, []byte("center:\n  name: b\n  role: standby\nlisten: 127.0.0.12:9000\nshutdown_timeout: 3s\n"), 0o600))
	cfg, err := Load([]string{"-config", file, "-listen", "127.0.0.12:9100"}, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, Center{Name: "b", Role: "standby"}, cfg.Center)
	require.Equal(t, "127.0.0.12:9100", cfg.Listen, "the flag wins")
	require.Equal(t, 3*time.Second, cfg.ShutdownTimeout, "the file's value stays where no flag is given")
	require.Equal(t, "./data", cfg.DataDir, "defaults fill what neither gives")
}

func TestBadConfigNamesEveryField(t *testing.T) {
	_, err := Load([]string{"-role", "master", "-listen", "nowhere", "-max-body-bytes", "5"}, &bytes.Buffer{})
	var cerr *Error
	require.ErrorAs(t, err, &cerr)
	require.Equal(t, map[string]string{
		"center.role":    `must be one of primary, standby, got "master"`,
		"listen":         `must be host:port, got "nowhere"`,
		"max_body_bytes": "must be at least 1024, got 5",
	}, cerr.Fields)
	require.Contains(t, err.Error(), "center.role")
}

func TestSyncKeyMustBeLongHex(t *testing.T) {
	cfg := Default()
	cfg.SyncKey = "not-hex"
	var cerr *Error
	require.ErrorAs(t, cfg.Validate(), &cerr)
	require.Contains(t, cerr.Fields, "sync_key")
	cfg.SyncKey = strings.Repeat("ab", 16) // 16 bytes: too short
	require.ErrorAs(t, cfg.Validate(), &cerr)
	require.Contains(t, cerr.Fields, "sync_key")
	cfg.SyncKey = strings.Repeat("ab", 32)
	require.NoError(t, cfg.Validate())
}

func TestUnknownOrMistypedYAMLKeysAreRejected(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown key": "listen: 127.0.0.1:1\nlisten_port: 80\n",
		"bad type":    "read_timeout: soon\n",
	} {
		file := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
		require.NoError(t, os.WriteFile(file, []byte(body), 0o600))
		_, err := Load([]string{"-config", file}, &bytes.Buffer{})
		require.Error(t, err, name)
		require.Contains(t, err.Error(), file, name)
	}
	_, err := Load([]string{"-config", filepath.Join(dir, "missing.yaml")}, &bytes.Buffer{})
	require.ErrorContains(t, err, "missing.yaml")
}

func TestHelpDocumentsEveryOption(t *testing.T) {
	var out bytes.Buffer
	_, err := Load([]string{"-h"}, &out)
	require.Error(t, err)
	for _, name := range []string{"-config", "-center", "-role", "-listen", "-data-dir", "-log-level", "-log-format",
		"-max-body-bytes", "-read-timeout", "-write-timeout", "-idle-timeout", "-shutdown-timeout", "refserver demo", "SHUANGHUO_ADMIN_TOKEN", "SHUANGHUO_SYNC_KEY"} {
		require.Contains(t, out.String(), name)
	}
}

func TestPeers(t *testing.T) {
	file := filepath.Join(t.TempDir(), "b.yaml")
	require.NoError(t, os.WriteFile(file, []byte("peers:\n  - name: a\n    url: http://127.0.0.11:8080\n"), 0o600))
	cfg, err := Load([]string{"-config", file}, &bytes.Buffer{})
	require.NoError(t, err)
	p, ok := cfg.Peer("a")
	require.True(t, ok)
	require.Equal(t, Peer{Name: "a", URL: "http://127.0.0.11:8080"}, p)
	_, ok = cfg.Peer("c")
	require.False(t, ok)

	cfg, err = Load([]string{"-peers", "a=http://127.0.0.11:8080,c=https://c.example/"}, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, []Peer{{Name: "a", URL: "http://127.0.0.11:8080"}, {Name: "c", URL: "https://c.example/"}}, cfg.Peers)

	_, err = Load([]string{"-peers", "a=http://127.0.0.11:8080,a=http://127.0.0.12:8080,x=ftp://h,y=http://u:p@h/,z=http://h/api,Bad_Name=http://h"}, &bytes.Buffer{})
	var cerr *Error
	require.ErrorAs(t, err, &cerr)
	require.Equal(t, map[string]string{
		"peers[1].name": `names peer "a" twice`,
		"peers[2].url":  `must be an http or https base URL such as http://127.0.0.12:8080, got "ftp://h"`,
		"peers[3].url":  `must be an http or https base URL such as http://127.0.0.12:8080, got "http://u:p@h/"`,
		"peers[4].url":  `must be an http or https base URL such as http://127.0.0.12:8080, got "http://h/api"`,
		"peers[5].name": `must be a DNS name (letters, digits, '-'), got "Bad_Name"`,
	}, cerr.Fields)
	_, err = Load([]string{"-peers", "http://h"}, &bytes.Buffer{})
	require.ErrorContains(t, err, "want name=url")
}
