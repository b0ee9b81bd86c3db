package dnsctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestApplyChanges(t *testing.T) {
	ctx := context.Background()
	s := startServer(t, Config{Zones: []Zone{testZone()}})
	a := newAsker(t, s.Addr(), "")
	serial := func() uint32 { return a.ask("ybj.internal.", dns.TypeSOA).Answer[0].(*dns.SOA).Serial }
	require.Equal(t, uint32(1), serial())

	got, err := s.ApplyChanges(ctx, "ybj.internal", []Change{
		{Op: OpAdd, Set: RecordSet{Name: "new", Type: "A", Data: []string{"10.9.9.9"}}},
		{Op: OpUpdate, Set: RecordSet{Name: "mail", Type: "A", Data: []string{"10.0.0.26"}, TTL: 60}},
		{Op: OpDelete, Set: RecordSet{Name: "txt", Type: "TXT"}},
	})
	require.NoError(t, err)
	assert.Equal(t, uint32(2), got)
	assert.Equal(t, uint32(2), serial())
	assert.Equal(t, []string{"10.9.9.9"}, addrs(a.ask("new.ybj.internal.", dns.TypeA)))
	mail := a.ask("mail.ybj.internal.", dns.TypeA)
	assert.Equal(t, []string{"10.0.0.26"}, addrs(mail))
	assert.Equal(t, uint32(60), mail.Answer[0].Header().Ttl)
	assert.Equal(t, dns.RcodeNameError, a.ask("txt.ybj.internal.", dns.TypeTXT).Rcode)

	t.Run("a failing batch changes nothing", func(t *testing.T) {
		_, err := s.ApplyChanges(ctx, "ybj.internal.", []Change{
			{Op: OpAdd, Set: RecordSet{Name: "new2", Type: "A", Data: []string{"10.9.9.8"}}},
			{Op: OpUpdate, Set: RecordSet{Name: "missing", Type: "A", Data: []string{"10.9.9.7"}}},
		})
		require.ErrorIs(t, err, ErrRecordSetNotFound)
		_, err = s.ApplyChanges(ctx, "ybj.internal.", []Change{{Op: OpAdd, Set: RecordSet{Name: "new", Type: "A", Data: []string{"10.9.9.9"}}}})
		require.ErrorIs(t, err, ErrRecordSetExists)
		assert.Equal(t, dns.RcodeNameError, a.ask("new2.ybj.internal.", dns.TypeA).Rcode)
		assert.Equal(t, uint32(2), serial())
	})
	t.Run("every field error is reported with its path", func(t *testing.T) {
		_, err := s.ApplyChanges(ctx, "ybj.internal.", []Change{
			{Op: "upsert", Set: RecordSet{Name: "x", Type: "A", Data: []string{"1.2.3.4"}}},
			{Op: OpAdd, Set: RecordSet{Name: "y", Type: "A", Data: []string{"not-an-ip"}}},
			{Op: OpAdd, Set: RecordSet{Name: "api", Type: "CNAME", Data: []string{"web"}}},
			{Op: OpAdd, Set: RecordSet{Name: "z", Type: "A", Centers: map[string][]string{"a": {"1.2.3.4"}}, Active: "c"}},
		})
		var ve *ValidationError
		require.ErrorAs(t, err, &ve)
		require.ErrorIs(t, err, ErrInvalid)
		paths := map[string]string{}
		for _, f := range ve.Errors {
			paths[f.Field] = f.Message
		}
		assert.Contains(t, paths, "changes[0].op")
		assert.Contains(t, paths, "changes[1].set.data[0]")
		assert.Contains(t, paths, "changes[3].set.active")
		assert.Contains(t, paths, "record_sets", "CNAME next to other data")
		assert.Equal(t, uint32(2), serial())
	})
	t.Run("unknown zone", func(t *testing.T) {
		_, err := s.ApplyChanges(ctx, "nope.internal.", nil)
		require.ErrorIs(t, err, ErrZoneNotFound)
	})
}

func TestApplyZoneKeepsSerialIncreasing(t *testing.T) {
	ctx := context.Background()
	s, err := New(Config{Logger: quietLogger()})
	require.NoError(t, err)
	z := testZone()
	z.SOA.Serial = 2026010100
	got, err := s.ApplyZone(ctx, z)
	require.NoError(t, err)
	assert.Equal(t, uint32(2026010100), got)
	z.SOA.Serial = 5
	got, err = s.ApplyZone(ctx, z)
	require.NoError(t, err)
	assert.Equal(t, uint32(2026010101), got)
	assert.Equal(t, []ZoneInfo{{Origin: "ybj.internal.", Serial: 2026010101, RecordSets: len(z.RecordSets)}}, s.Zones())

	sets, err := s.Records("ybj.internal")
	require.NoError(t, err)
	assert.Equal(t, "api.ybj.internal.", sets[2].Name, "names are stored absolute")
	sets[2].Centers["a"][0] = "mutated"
	again, _ := s.Records("ybj.internal")
	assert.Equal(t, "10.1.0.10", again[2].Centers["a"][0], "Records returns a copy")

	require.NoError(t, s.DeleteZone(ctx, "ybj.internal."))
	assert.Empty(t, s.Zones())
	require.ErrorIs(t, s.DeleteZone(ctx, "ybj.internal."), ErrZoneNotFound)
	require.NoError(t, s.Close(ctx))
}

func TestConfigValidate(t *testing.T) {
	cfg := Config{
		UDPAddr:     "nonsense",
		Forwarders:  []string{"resolver.example"},
		Views:       []View{{Name: "a", Center: "a", Networks: []string{"10.0.0.0/33"}}},
		TSIGKeys:    []TSIGKey{{Name: "xfr.", Secret: "!!"}},
		Secondaries: []Secondary{{Addr: "127.0.0.2:53", Key: "other."}},
		Zones: []Zone{
			{Origin: "a.internal.", RecordSets: []RecordSet{{Name: "x.b.internal.", Type: "A", Data: []string{"1.2.3.4"}}}},
			{Origin: "a.internal."},
		},
	}
	err := cfg.Validate()
	var ve *ValidationError
	require.ErrorAs(t, err, &ve)
	var paths []string
	for _, f := range ve.Errors {
		paths = append(paths, f.Field)
	}
	for _, want := range []string{
		"udp_addr", "forwarders[0]", "views[0].networks[0]", "tsig_keys[0].secret",
		"secondaries[0].key", "zones[0].record_sets[0].name", "zones[1].origin",
	} {
		assert.Contains(t, paths, want)
	}
	assert.True(t, strings.HasPrefix(err.Error(), "dnsctl: invalid configuration: "))
	_, err = New(cfg)
	require.ErrorIs(t, err, ErrInvalid)
}

// An origin is shown in logs, answers and the control plane's lists: one that hides
// characters (NUL, controls, bidi overrides that reorder what an operator reads) or escapes
// them (\000) is refused.
func TestZoneOriginRefusesHiddenCharacters(t *testing.T) {
	for _, origin := range []string{
		"za\x00.internal.", "za\n.internal.", "za\x7f.internal.", "za\u0085.internal.",
		"za\u202e.internal.", "za\u2066x.internal.", "za\u200f.internal.", "za\u200e.internal.",
		`za\000.internal.`, `za\..internal.`,
	} {
		err := Zone{Origin: origin}.Validate()
		var ve *ValidationError
		if assert.ErrorAs(t, err, &ve, "%q", origin) {
			assert.Equal(t, "origin", ve.Errors[0].Field, "%q", origin)
		}
		_, err = New(Config{Zones: []Zone{{Origin: origin}}})
		assert.ErrorIs(t, err, ErrInvalid, "%q", origin)
	}
	require.NoError(t, Zone{Origin: "za.internal"}.Validate())
	require.NoError(t, Zone{Origin: "医保.internal."}.Validate(), "plain Unicode letters are names")
}

func TestConfigJSON(t *testing.T) {
	in := `{"udp_addr":"127.0.0.1:5300","forward_timeout":"1500ms","zones":[{"origin":"x.internal.","record_sets":[{"name":"a","type":"A","data":["10.0.0.1"]}]}]}`
	var cfg Config
	require.NoError(t, json.Unmarshal([]byte(in), &cfg))
	require.NoError(t, cfg.Validate())
	assert.Equal(t, 1500*time.Millisecond, time.Duration(cfg.ForwardTimeout))
	out, err := json.Marshal(cfg)
	require.NoError(t, err)
	assert.Contains(t, string(out), `"forward_timeout":"1.5s"`)
}

func TestZoneFileRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, err := New(Config{Logger: quietLogger(), Zones: []Zone{testZone()}})
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, s.ExportZoneFile("ybj.internal.", &buf))
	assert.Contains(t, buf.String(), "api.ybj.internal.\t300\tIN\tA\t10.1.0.10")
	served, err := s.Zone("ybj.internal.")
	require.NoError(t, err)
	var written bytes.Buffer
	require.NoError(t, s.WriteZoneFile(&written, served))
	assert.Equal(t, buf.String(), written.String(), "a spec is written as it is served")

	other, err := New(Config{Logger: quietLogger()})
	require.NoError(t, err)
	serial, err := other.ImportZoneFile(ctx, "ybj.internal.", bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	assert.Equal(t, uint32(1), serial)
	var again bytes.Buffer
	require.NoError(t, other.ExportZoneFile("ybj.internal.", &again))
	assert.Equal(t, buf.String(), again.String())

	for name, bad := range map[string]string{
		"syntax":      "www IN A 10.0.0.300\n",
		"outside":     "www.example.org. IN A 10.0.0.1\n",
		"include":     "$INCLUDE /etc/passwd\n",
		"unsupported": "x IN HINFO cpu os\n",
	} {
		_, err := other.ImportZoneFile(ctx, "ybj.internal.", strings.NewReader(bad))
		assert.ErrorIs(t, err, ErrZoneFile, name)
	}
	require.ErrorIs(t, s.ExportZoneFile("nope.", &buf), ErrZoneNotFound)
	require.ErrorIs(t, s.WriteZoneFile(&buf, Zone{Origin: "."}), ErrInvalid)
}

func TestTwoServersInOneProcess(t *testing.T) {
	a := startServer(t, Config{Zones: []Zone{testZone()}})
	b := startServer(t, Config{Zones: []Zone{testZone()}})
	_, err := a.Switch(context.Background(), Scope{}, "b")
	require.NoError(t, err)
	assert.Equal(t, []string{"10.2.0.10", "10.2.0.11"}, addrs(newAsker(t, a.Addr(), "").ask("api.ybj.internal.", dns.TypeA)))
	assert.Equal(t, []string{"10.1.0.10", "10.1.0.11"}, addrs(newAsker(t, b.Addr(), "").ask("api.ybj.internal.", dns.TypeA)))
	assert.True(t, errors.Is(a.Start(context.Background()), ErrStarted))
}
