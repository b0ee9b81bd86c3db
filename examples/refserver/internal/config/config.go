// Package config is the reference server's configuration: one process is one center.
// It is read from an optional YAML file, then overridden by flags; unknown keys are
// rejected and every invalid value is reported with the field's name.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// Config is one center's reference server. Field comments are the user documentation;
// each ends with its default.
type Config struct {
	// Center names this process's data center and its role.
	Center Center `yaml:"center"`
	// Listen is the REST API's TCP address. Default "127.0.0.1:8080".
	Listen string `yaml:"listen" validate:"required,listen_addr"`
	// DataDir holds the SQLite database. Default "./data".
	DataDir string `yaml:"data_dir" validate:"required"`
	// LogLevel is debug, info, warn or error. Default "info".
	LogLevel string `yaml:"log_level" validate:"oneof=debug info warn error"`
	// LogFormat is text or json. Default "text".
	LogFormat string `yaml:"log_format" validate:"oneof=text json"`
	// MaxBodyBytes caps a request body; larger bodies get 413. Default 1 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes" validate:"min=1024,max=1073741824"`
	// MaxArtifactBytes caps an app version's artifact uploaded to deploy (streamed, not
	// bound by max_body_bytes). Default 1 GiB.
	MaxArtifactBytes int64 `yaml:"max_artifact_bytes" validate:"min=1024,max=68719476736"`
	// UploadMinRate cuts an artifact upload that receives too little: not bound by
	// read_timeout, an upload must go on at this rate or is answered 408, keeping nothing, so
	// that slow clients do not hold the server's connections.
	UploadMinRate Rate `yaml:"upload_min_rate"`
	// ReadTimeout bounds reading a whole request, headers and body. Default 30s.
	ReadTimeout time.Duration `yaml:"read_timeout" validate:"min=1s,max=1h"`
	// WriteTimeout bounds writing a response. Default 60s.
	WriteTimeout time.Duration `yaml:"write_timeout" validate:"min=1s,max=1h"`
	// IdleTimeout closes idle keep-alive connections. Default 120s.
	IdleTimeout time.Duration `yaml:"idle_timeout" validate:"min=1s,max=24h"`
	// ShutdownTimeout is how long in-flight requests may finish on shutdown. Default 15s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" validate:"min=0s,max=10m"`
	// LocalNodes are where and as whom deploy's local nodes run the teams' apps.
	LocalNodes LocalNodes `yaml:"local_nodes"`
	// DNS runs this center's internal DNS (dnsctl). Off unless dns.listen is set.
	DNS DNS `yaml:"dns"`
	// SyncKey is the secret (hex, at least 32 bytes) that the two centers share to sign the
	// change feeds of appsync: set the same key in both. SHUANGHUO_SYNC_KEY, when set,
	// overrides it; keep it out of files others read. Default "": appsync is off.
	SyncKey string `yaml:"sync_key" validate:"omitempty,hexadecimal,min=64,max=512"`
	// Zones names the zones (可用区) of each center, e.g. {a: [zone-1, zone-2], b: [zone-3]}: a
	// DR plan's switch-traffic step makes the balancers' servers in the target center's zones
	// working and the other center's standby. Default none: such plans are refused.
	Zones map[string][]string `yaml:"zones" validate:"dive,keys,max=32,endkeys,dive,required,max=64"`
	// Peers are the other centers this one reads from, by name: an appsync binding names one,
	// and the server fetches no other URL for a team. Default none: bindings are refused.
	Peers []Peer `yaml:"peers" validate:"dive"`
}

// Peer is another center's reference server.
type Peer struct {
	// Name is what bindings call the center, such as its center.name "b".
	Name string `yaml:"name" validate:"required,max=32,hostname_rfc1123"`
	// URL is its base URL, http or https, such as "http://127.0.0.12:8080".
	URL string `yaml:"url" validate:"required,max=1024"`
}

// Rate is a least transfer rate: Bytes in every Window.
type Rate struct {
	// Bytes is what must arrive in each window, 1 to 1 GiB. Default 65536 (64 KiB).
	Bytes int64 `yaml:"bytes" validate:"min=1,max=1073741824"`
	// Window is how long the bytes may take, 1s to 10m. Default 30s.
	Window time.Duration `yaml:"window" validate:"min=1s,max=10m"`
}

// LocalNodes configures deploy's local nodes. Run as root, the server runs each local node's
// instances as a user of its own (uid = gid, with no /etc/passwd entry), in a directory
// outside the data directory, which only the server reads (0700). Not run as root, instances
// run as the server's user and reach all it can: local nodes are then for development only.
type LocalNodes struct {
	// Dir holds the local nodes' directories (versions, instances, logs); every directory
	// above it must let others pass (x). Default "": <data_dir>-nodes, beside the data dir.
	Dir string `yaml:"dir"`
	// FirstUID is the uid (and gid) of the first local node; the next ones get the following
	// uids, up to FirstUID+999. Pick a range no user or service of the host uses. Default 60100.
	FirstUID int `yaml:"first_uid" validate:"min=1000,max=2147482000"`
}

// NodesDir is where local nodes' directories are.
func (c Config) NodesDir() string {
	if c.LocalNodes.Dir != "" {
		return c.LocalNodes.Dir
	}
	return filepath.Clean(c.DataDir) + "-nodes"
}

// DNS configures this center's dnsctl server.
type DNS struct {
	// Listen is the UDP and TCP address of the DNS server. Default "": no DNS server.
	Listen string `yaml:"listen" validate:"omitempty,listen_addr"`
	// Forwarders are upstream resolvers (host:port) for names outside our zones. Default none:
	// such names are refused.
	Forwarders []string `yaml:"forwarders" validate:"dive,hostname_port"`
	// Secondaries are DNS servers (host:port) that may transfer our zones and get a NOTIFY
	// after every change, e.g. the other center's. Default none.
	Secondaries []string `yaml:"secondaries" validate:"dive,hostname_port"`
	// Primary makes this server a secondary of the DNS server at host:port for PrimaryZones,
	// answering from its last copy when the primary is gone. Default "": a primary itself.
	Primary string `yaml:"primary" validate:"omitempty,hostname_port"`
	// PrimaryZones are the zones to transfer from Primary. Required with primary.
	PrimaryZones []string `yaml:"primary_zones" validate:"required_with=Primary,dive,fqdn"`
}

// Center is this process's data center.
type Center struct {
	// Name is a short identifier such as "a" or "b". Default "a".
	Name string `yaml:"name" validate:"required,max=32,hostname_rfc1123"`
	// Role is primary (生产中心) or standby (灾备中心). Default "primary".
	Role string `yaml:"role" validate:"oneof=primary standby"`
}

// Default returns the embedded defaults: center "a", primary, on 127.0.0.1:8080.
func Default() Config {
	return Config{
		Center:           Center{Name: "a", Role: "primary"},
		Listen:           "127.0.0.1:8080",
		DataDir:          "./data",
		LogLevel:         "info",
		LogFormat:        "text",
		MaxBodyBytes:     1 << 20,
		MaxArtifactBytes: 1 << 30,
		ReadTimeout:      30 * time.Second,
		WriteTimeout:     60 * time.Second,
		IdleTimeout:      120 * time.Second,
		ShutdownTimeout:  15 * time.Second,
		LocalNodes:       LocalNodes{FirstUID: 60100},
		UploadMinRate:    Rate{Bytes: 64 << 10, Window: 30 * time.Second},
	}
}

// Error lists every invalid field, by its YAML path.
type Error struct {
	Fields map[string]string
}

func (e *Error) Error() string {
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + e.Fields[k]
	}
	return "config: invalid " + strings.Join(parts, "; ")
}

// Validate checks every field and returns an *Error naming each invalid one.
func (c Config) Validate() error {
	fields, err := validate.Fields(validate.New("yaml"), c)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	seen := map[string]bool{}
	for i, p := range c.Peers {
		if p.URL != "" && !BaseURL(p.URL) {
			validate.Add(&fields, fmt.Sprintf("peers[%d].url", i), fmt.Sprintf("must be an http or https base URL such as http://127.0.0.12:8080, got %q", p.URL))
		}
		if seen[p.Name] {
			validate.Add(&fields, fmt.Sprintf("peers[%d].name", i), fmt.Sprintf("names peer %q twice", p.Name))
		}
		seen[p.Name] = true
	}
	if fields != nil {
		return &Error{Fields: fields}
	}
	return nil
}

// BaseURL reports whether s is an http or https URL of a server's root: a host, no user,
// path (but "/"), query or fragment.
func BaseURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil &&
		(u.Path == "" || u.Path == "/") && u.RawQuery == "" && !u.ForceQuery && u.Fragment == "" && u.Opaque == ""
}

// Peer returns the peer named name.
func (c Config) Peer(name string) (Peer, bool) {
	for _, p := range c.Peers {
		if p.Name == name {
			return p, true
		}
	}
	return Peer{}, false
}

// Load builds the configuration: defaults, then the YAML file named by -config (if any),
// then the flags that were set explicitly. args excludes the program name.
func Load(args []string, stderr io.Writer) (Config, error) {
	cfg := Default()
	fs := NewFlagSet("refserver", &cfg, stderr)
	var file string
	fs.StringVar(&file, "config", "", "YAML configuration `file` (keys in parentheses below); flags given as well override it")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: refserver [flags]               run one center
       refserver demo [flags]          run center A and center B on loopback with demo data
       refserver sign [flags] URL      send one request signed as a gateway consumer
       refserver demo-app [flags]      the demo's outpatient app, which the demo deploys
Each subcommand's -h lists its flags.

The first start prints an admin API token once; set `+"SHUANGHUO_ADMIN_TOKEN"+` to choose it instead.
appsync's key (sync_key in the file) may come from `+"SHUANGHUO_SYNC_KEY"+` instead, to keep it out of files.

flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("config: unexpected argument %q", fs.Arg(0))
	}
	if file != "" {
		// Flags set on the command line win over the file: re-apply them on top of it.
		var explicit []string
		fs.Visit(func(f *flag.Flag) { explicit = append(explicit, "-"+f.Name+"="+f.Value.String()) })
		cfg = Default()
		if err := readYAML(file, &cfg); err != nil {
			return Config{}, err
		}
		again := NewFlagSet("refserver", &cfg, io.Discard)
		again.String("config", "", "")
		if err := again.Parse(explicit); err != nil {
			return Config{}, err
		}
	}
	return cfg, cfg.Validate()
}

// NewFlagSet binds cfg's fields to flags, documented with their defaults.
func NewFlagSet(name string, cfg *Config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&cfg.Center.Name, "center", cfg.Center.Name, "this center's `name` (center.name)")
	fs.StringVar(&cfg.Center.Role, "role", cfg.Center.Role, "this center's `role`: primary or standby (center.role)")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "REST API `address` host:port (listen)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "`directory` for the SQLite store (data_dir)")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "`level`: debug, info, warn or error (log_level)")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "`format`: text or json (log_format)")
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", cfg.MaxBodyBytes, "largest request body in `bytes` (max_body_bytes)")
	fs.Int64Var(&cfg.MaxArtifactBytes, "max-artifact-bytes", cfg.MaxArtifactBytes, "largest deploy artifact upload in `bytes` (max_artifact_bytes)")
	fs.Int64Var(&cfg.UploadMinRate.Bytes, "upload-min-bytes", cfg.UploadMinRate.Bytes, "`bytes` an artifact upload must receive in each -upload-rate-window, or 408 (upload_min_rate.bytes)")
	fs.DurationVar(&cfg.UploadMinRate.Window, "upload-rate-window", cfg.UploadMinRate.Window, "`window` of -upload-min-bytes (upload_min_rate.window)")
	fs.DurationVar(&cfg.ReadTimeout, "read-timeout", cfg.ReadTimeout, "time to read a whole request (read_timeout)")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", cfg.WriteTimeout, "time to write a response (write_timeout)")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "keep-alive idle time (idle_timeout)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "time in-flight requests get on shutdown (shutdown_timeout)")
	fs.StringVar(&cfg.LocalNodes.Dir, "local-nodes-dir", cfg.LocalNodes.Dir, "`directory` of the local deploy nodes; empty: <data-dir>-nodes (local_nodes.dir)")
	fs.IntVar(&cfg.LocalNodes.FirstUID, "local-nodes-first-uid", cfg.LocalNodes.FirstUID, "`uid` (and gid) of the first local node's apps, when run as root (local_nodes.first_uid)")
	fs.StringVar(&cfg.DNS.Listen, "dns-listen", cfg.DNS.Listen, "DNS server UDP+TCP `address`; empty: no DNS server (dns.listen)")
	fs.Var((*list)(&cfg.DNS.Forwarders), "dns-forwarders", "comma-separated upstream `resolvers` host:port (dns.forwarders)")
	fs.Var((*list)(&cfg.DNS.Secondaries), "dns-secondaries", "comma-separated secondary DNS `servers` host:port (dns.secondaries)")
	fs.StringVar(&cfg.DNS.Primary, "dns-primary", cfg.DNS.Primary, "primary DNS server `address` to transfer zones from (dns.primary)")
	fs.Var((*list)(&cfg.DNS.PrimaryZones), "dns-primary-zones", "comma-separated `zones` to transfer from the primary (dns.primary_zones)")
	fs.Var((*zones)(&cfg.Zones), "zones", "each center's `zones`, as a=zone-1,zone-2;b=zone-3 (zones)")
	fs.Var((*peers)(&cfg.Peers), "peers", "the other `centers` bindings may name, as b=http://127.0.0.12:8080,c=https://c.example (peers)")
	return fs
}

// zones is the -zones flag: center=zone,zone;center=zone.
type zones map[string][]string

func (z *zones) String() string {
	if z == nil {
		return ""
	}
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(*z)) {
		parts = append(parts, c+"="+strings.Join((*z)[c], ","))
	}
	return strings.Join(parts, ";")
}

func (z *zones) Set(v string) error {
	*z = zones{}
	for _, part := range strings.Split(v, ";") {
		center, names, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || center == "" {
			return fmt.Errorf("want center=zone,zone;center=zone, got %q", part)
		}
		var l list
		_ = l.Set(names)
		(*z)[center] = l
	}
	return nil
}

// peers is the -peers flag: name=url,name=url.
type peers []Peer

func (p *peers) String() string {
	if p == nil {
		return ""
	}
	parts := make([]string, len(*p))
	for i, peer := range *p {
		parts[i] = peer.Name + "=" + peer.URL
	}
	return strings.Join(parts, ",")
}

func (p *peers) Set(v string) error {
	*p = nil
	var l list
	_ = l.Set(v)
	for _, part := range l {
		name, u, ok := strings.Cut(part, "=")
		if !ok || name == "" {
			return fmt.Errorf("want name=url,name=url, got %q", part)
		}
		*p = append(*p, Peer{Name: name, URL: u})
	}
	return nil
}

// list is a comma-separated flag value.
type list []string

func (l *list) String() string { return strings.Join(*l, ",") }

func (l *list) Set(v string) error {
	*l = nil
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func readYAML(path string, cfg *Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: read %s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	return nil
}
