package lb

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func validConfig() BalancerConfig {
	return BalancerConfig{
		Name:    "seed",
		Address: "127.0.0.1",
		Listeners: []Listener{{
			Name: "web", Port: 20004, Protocol: ProtocolHTTP, DefaultGroup: "outpatient",
			Rules: []Rule{{PathPrefix: "/pms/biz/outpatient/bizc2201", Group: "outpatient"}},
		}},
		Groups: []ServerGroup{{
			Name: "outpatient",
			Servers: []Server{
				{Address: "10.0.0.1", Port: 8085, Weight: 1, Zone: "a1"},
				{Address: "10.0.0.2", Port: 8085, Weight: 1, Zone: "a2", Role: Standby},
			},
			HealthCheck: &HealthCheck{Type: CheckHTTP, Path: "/health"},
		}},
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*BalancerConfig)
		fields map[string]string // field -> message substring
	}{
		{"valid", func(*BalancerConfig) {}, nil},
		{"missing name", func(c *BalancerConfig) { c.Name = "" }, map[string]string{"name": "is required"}},
		{"bad address", func(c *BalancerConfig) { c.Address = "vip" }, map[string]string{"address": "must be an IP address"}},
		{"port range", func(c *BalancerConfig) { c.Listeners[0].Port = 70000 }, map[string]string{"listeners[0].port": "must be at most 65535"}},
		{"bad protocol", func(c *BalancerConfig) { c.Listeners[0].Protocol = "udp" }, map[string]string{"listeners[0].protocol": "must be one of: http, https, tcp"}},
		{"duplicate port", func(c *BalancerConfig) {
			c.Listeners = append(c.Listeners, Listener{Name: "web2", Port: 20004, Protocol: ProtocolTCP, DefaultGroup: "outpatient"})
		}, map[string]string{"listeners[1].port": `already used by listener "web"`}},
		{"rule to unknown group", func(c *BalancerConfig) { c.Listeners[0].Rules[0].Group = "nope" }, map[string]string{"listeners[0].rules[0].group": `no server group named "nope"`}},
		{"default to unknown group", func(c *BalancerConfig) { c.Listeners[0].DefaultGroup = "nope" }, map[string]string{"listeners[0].default_group": "no server group"}},
		{"path and prefix", func(c *BalancerConfig) { c.Listeners[0].Rules[0].Path = "/x" }, map[string]string{"listeners[0].rules[0].path": "not both"}},
		{"path must be absolute", func(c *BalancerConfig) { c.Listeners[0].Rules[0].PathPrefix = "pms" }, map[string]string{"listeners[0].rules[0].path_prefix": `must start with "/"`}},
		{"duplicate rule", func(c *BalancerConfig) { c.Listeners[0].Rules = append(c.Listeners[0].Rules, c.Listeners[0].Rules[0]) }, map[string]string{"listeners[0].rules[1]": "same requests as rules[0]"}},
		// A draft built step by step: a balancer without listeners or groups listens nowhere.
		{"no listeners or groups", func(c *BalancerConfig) { c.Listeners, c.Groups = nil, nil }, nil},
		{"zero weight is the default", func(c *BalancerConfig) { c.Groups[0].Servers[0].Weight = 0 }, nil},
		{"negative weight", func(c *BalancerConfig) { c.Groups[0].Servers[1].Weight = -3 }, map[string]string{"groups[0].servers[1].weight": "must be at least 1"}},
		{"bad role", func(c *BalancerConfig) { c.Groups[0].Servers[0].Role = "backup" }, map[string]string{"groups[0].servers[0].role": "must be one of: working, standby"}},
		{"duplicate server", func(c *BalancerConfig) { c.Groups[0].Servers[1].Address = "10.0.0.1" }, map[string]string{"groups[0].servers[1]": "same address and port as servers[0]"}},
		{"no servers", func(c *BalancerConfig) { c.Groups[0].Servers = nil }, map[string]string{"groups[0].servers": "is required"}},
		{"duplicate group", func(c *BalancerConfig) { c.Groups = append(c.Groups, c.Groups[0]) }, map[string]string{"groups[1].name": "duplicate server group"}},
		{"hash without key", func(c *BalancerConfig) { c.Groups[0].Algorithm = Hash }, map[string]string{"groups[0].hash_key": "is required for the hash algorithm"}},
		{"header hash without name", func(c *BalancerConfig) {
			c.Groups[0].Algorithm = Hash
			c.Groups[0].HashKey = &HashKey{Source: HashHeader}
		}, map[string]string{"groups[0].hash_key.name": "is required unless source is client_ip"}},
		{"check timeout not below interval", func(c *BalancerConfig) {
			c.Groups[0].HealthCheck.Interval = Duration(time.Second)
			c.Groups[0].HealthCheck.Timeout = Duration(2 * time.Second)
		}, map[string]string{"groups[0].health_check.timeout": "must be shorter than interval"}},
		{"negative timeout", func(c *BalancerConfig) { c.Listeners[0].ReadTimeout = -1 }, map[string]string{"listeners[0].read_timeout": "must be from 10ms to 1h, got -1ns"}},
		// A number once read as nanoseconds: a health check every 5ns spun the server.
		{"health check every 5ns", func(c *BalancerConfig) {
			c.Groups[0].HealthCheck = &HealthCheck{Type: CheckTCP, Interval: Duration(5)}
		}, map[string]string{"groups[0].health_check.interval": "must be from 10ms to 1h, got 5ns"}},
		{"timeout of a day", func(c *BalancerConfig) { c.Groups[0].ConnectTimeout = Duration(24 * time.Hour) }, map[string]string{"groups[0].connect_timeout": "must be from 1ms to 1m, got 24h0m0s"}},
		{"https without tls", func(c *BalancerConfig) { c.Listeners[0].Protocol = ProtocolHTTPS }, map[string]string{"listeners[0].tls": "is required for https"}},
		{"bad certificate", func(c *BalancerConfig) {
			c.Listeners[0].Protocol = ProtocolHTTPS
			c.Listeners[0].TLS = &TLSConfig{Certificates: []Certificate{{CertPEM: "x", KeyPEM: "y"}}}
		}, map[string]string{"listeners[0].tls.certificates[0]": "cannot load"}},
		{"certificate files that do not exist", func(c *BalancerConfig) {
			c.Listeners[0].Protocol = ProtocolHTTPS
			c.Listeners[0].TLS = &TLSConfig{Certificates: []Certificate{{CertFile: "/nonexistent.pem", KeyFile: "/nonexistent.key"}}}
		}, map[string]string{"listeners[0].tls.certificates[0]": "cannot load"}},
		{"empty certificate", func(c *BalancerConfig) {
			c.Listeners[0].Protocol = ProtocolHTTPS
			c.Listeners[0].TLS = &TLSConfig{Certificates: []Certificate{{}}}
		}, map[string]string{"listeners[0].tls.certificates[0].cert_pem": "is required unless cert_file is set"}},
		{"tcp needs default group, takes no rules", func(c *BalancerConfig) {
			c.Listeners[0].Protocol = ProtocolTCP
			c.Listeners[0].DefaultGroup = ""
		}, map[string]string{"listeners[0].default_group": "is required for tcp", "listeners[0].rules": "not allowed for tcp"}},
		{"every error at once", func(c *BalancerConfig) {
			c.Name = ""
			c.Listeners[0].Port = -1
			c.Groups[0].Servers[0].Port = 0
		}, map[string]string{"name": "required", "listeners[0].port": "at least 0", "groups[0].servers[0].port": "at least 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want a *ValidationError", err)
			}
			got := ve.Fields()
			for field, want := range tt.fields {
				if !strings.Contains(got[field], want) {
					t.Errorf("field %s: got %q, want it to contain %q (all: %v)", field, got[field], want, got)
				}
			}
			if len(got) != len(tt.fields) {
				t.Errorf("got %d fields %v, want %d", len(got), got, len(tt.fields))
			}
		})
	}
}

func TestConfigJSON(t *testing.T) {
	cfg := validConfig()
	cfg.Groups[0].HealthCheck.Interval = Duration(1500 * time.Millisecond)
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"interval":"1.5s"`) {
		t.Errorf("durations are not strings: %s", raw)
	}
	var back BalancerConfig
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.Groups[0].HealthCheck.Interval != cfg.Groups[0].HealthCheck.Interval {
		t.Errorf("interval = %v after a round trip", back.Groups[0].HealthCheck.Interval)
	}
	if err := json.Unmarshal([]byte(`{"interval":"soon"}`), &HealthCheck{}); err == nil {
		t.Error("a bad duration was accepted")
	}
}

// A clone shares nothing with its original: changing any list or pointer of one leaves the
// other as it was.
func TestClone(t *testing.T) {
	orig := validConfig()
	orig.Listeners[0].TLS = &TLSConfig{Certificates: []Certificate{{CertFile: "a.pem", KeyFile: "a.key"}}}
	orig.Groups[0].HashKey = &HashKey{Source: HashHeader, Name: "X-Patient"}
	orig.Groups[0].HealthCheck.ExpectStatus = []int{200}
	before, err := json.Marshal(orig)
	if err != nil {
		t.Fatal(err)
	}
	c := orig.Clone()
	if got, _ := json.Marshal(c); string(got) != string(before) {
		t.Fatalf("clone differs:\n%s\n%s", got, before)
	}
	c.Listeners[0].Rules[0].Group = "x"
	c.Listeners[0].TLS.Certificates[0].CertFile = "x"
	c.Groups[0].Servers[0].Role = Standby
	c.Groups[0].HashKey.Name = "x"
	c.Groups[0].HealthCheck.Path = "/x"
	c.Groups[0].HealthCheck.ExpectStatus[0] = 500
	c.Listeners = append(c.Listeners, Listener{Name: "more"})
	if after, _ := json.Marshal(orig); string(after) != string(before) {
		t.Fatalf("changing the clone changed the original:\n%s\n%s", after, before)
	}
}

func TestSwitchRoles(t *testing.T) {
	centerOf := map[string]string{"a1": "a", "a2": "a", "b1": "b"}
	cfg := BalancerConfig{Groups: []ServerGroup{
		{Name: "both", Servers: []Server{
			{Address: "10.0.0.1", Zone: "a1"}, {Address: "10.0.0.2", Zone: "a2", Role: Working},
			{Address: "10.1.0.1", Zone: "b1", Role: Standby}, {Address: "10.9.0.1", Zone: "elsewhere", Role: Standby},
		}},
		{Name: "a-only", Servers: []Server{{Address: "10.0.0.3", Zone: "a1"}}},
	}}
	roles := func() []Role {
		var out []Role
		for _, g := range cfg.Groups {
			for _, s := range g.Servers {
				out = append(out, s.role())
			}
		}
		return out
	}
	if !cfg.SwitchRoles(centerOf, "b") {
		t.Fatal("switching to b changed nothing")
	}
	// a's servers stand by, b's work, the server of no center and the group without b's
	// servers keep their roles.
	if got, want := roles(), []Role{Standby, Standby, Working, Standby, Working}; !slices.Equal(got, want) {
		t.Fatalf("after switching to b: %v, want %v", got, want)
	}
	if cfg.SwitchRoles(centerOf, "b") {
		t.Fatal("switching to b twice changed something")
	}
	if !cfg.SwitchRoles(centerOf, "a") {
		t.Fatal("switching back to a changed nothing")
	}
	if got, want := roles(), []Role{Working, Working, Standby, Standby, Working}; !slices.Equal(got, want) {
		t.Fatalf("after switching back to a: %v, want %v", got, want)
	}
}
