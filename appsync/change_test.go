package appsync

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var key = []byte("0123456789abcdef0123456789abcdef")

func release() Change {
	return Change{
		Seq: 7, Time: time.Date(2025, 3, 1, 8, 0, 0, 123456789, time.FixedZone("CST", 8*3600)),
		Kind: KindRelease, Project: "hx", App: "outpatient", Version: "1.4.2+b7",
		Digest: "sha256:" + strings.Repeat("ab", 32), Size: 1234, Notes: "修复 <bug>", Nodes: []string{"a1", "a2"},
	}
}

// withPieces is release() of a size-byte artifact with n piece sums of
// pieceSize bytes.
func withPieces(size, pieceSize int64, n int) Change {
	c := release()
	c.Size, c.PieceSize, c.Pieces = size, pieceSize, strings.Repeat("0123456789abcdef", 4*n)
	return c
}

func config() Change {
	return Change{
		Seq: 8, Time: time.Date(2025, 3, 1, 8, 0, 1, 0, time.UTC), Kind: KindConfig, Project: "hx", App: "outpatient",
		Config: json.RawMessage(`{ "port": 8085, "url": "http://x/?a=1&b=<2>", "n": 1.50, "z": {"b": 1, "a": [1, 2]} }`),
	}
}

// A change signed by one center verifies in the other after the trip over
// the wire: JSON re-encoding (HTML escapes, spaces, key order, time zone)
// keeps its MAC.
func TestSignVerifyAcrossTheWire(t *testing.T) {
	for _, c := range []Change{release(), withPieces(9000, 4096, 3), config(), {Seq: 9, Time: time.Now(), Kind: KindConfig, Project: "hx", App: "a", Deleted: true}} {
		Sign(key, &c)
		if err := Verify(key, &c); err != nil {
			t.Fatal(err)
		}
		wire, err := json.Marshal(c) // escapes <, >, & in Config
		if err != nil {
			t.Fatal(err)
		}
		var got Change
		if err := json.Unmarshal(wire, &got); err != nil {
			t.Fatal(err)
		}
		got.Time = got.Time.In(time.Local)
		if c.Config != nil {
			var b bytes.Buffer
			_ = json.Indent(&b, got.Config, "", "   ")
			got.Config = b.Bytes()
		}
		if err := Verify(key, &got); err != nil {
			t.Fatalf("after the wire: %v\n%s", err, wire)
		}
		if err := got.Validate(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestVerifyRejectsTampering(t *testing.T) {
	tamper := map[string]func(*Change){
		"seq":     func(c *Change) { c.Seq++ },
		"time":    func(c *Change) { c.Time = c.Time.Add(time.Nanosecond) },
		"project": func(c *Change) { c.Project = "hy" },
		"nodes":   func(c *Change) { c.Nodes = append(c.Nodes, "a3") },
		"digest":  func(c *Change) { c.Digest = "sha256:" + strings.Repeat("cd", 32) },
		"notes":   func(c *Change) { c.Notes = "" },
		"config":  func(c *Change) { c.Config = json.RawMessage(`{"port":8086}`) },
		"deleted": func(c *Change) { c.Deleted = true },
		"pieces":  func(c *Change) { c.PieceSize, c.Pieces = 4096, strings.Repeat("ab", 32) },
		"mac":     func(c *Change) { c.MAC = strings.Repeat("0", 64) },
		"no mac":  func(c *Change) { c.MAC = "" },
		"not hex": func(c *Change) { c.MAC = "zz" },
	}
	for name, f := range tamper {
		c := release()
		Sign(key, &c)
		f(&c)
		if err := Verify(key, &c); !errors.Is(err, ErrForged) {
			t.Errorf("%s: %v", name, err)
		}
	}
	c := release()
	Sign(key, &c)
	if err := Verify([]byte("another key that is long enough!"), &c); !errors.Is(err, ErrForged) {
		t.Errorf("other key: %v", err)
	}
	if err := Verify(key[:31], &c); !errors.Is(err, ErrInvalid) {
		t.Errorf("short key: %v", err)
	}
}

// The MAC covers the piece sums, as it covers the digest: a Sink that
// checks the pieces trusts them as much.
func TestVerifyRejectsTamperedPieces(t *testing.T) {
	tamper := map[string]func(*Change){
		"one digit":  func(c *Change) { c.Pieces = "1" + c.Pieces[1:] },
		"last digit": func(c *Change) { c.Pieces = c.Pieces[:len(c.Pieces)-1] + "e" },
		"piece size": func(c *Change) { c.PieceSize *= 2 },
		"removed":    func(c *Change) { c.PieceSize, c.Pieces = 0, "" },
	}
	for name, f := range tamper {
		c := withPieces(9000, 4096, 3)
		Sign(key, &c)
		if err := Verify(key, &c); err != nil {
			t.Fatal(err)
		}
		f(&c)
		if err := Verify(key, &c); !errors.Is(err, ErrForged) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Changes without piece sums keep the MACs they had before piece sums
// existed: the canonical encoding of their fields is pinned here.
func TestMACWithoutPiecesUnchanged(t *testing.T) {
	for _, tc := range []struct {
		c   Change
		mac string
	}{
		{release(), "b2d2730604728c1ba4772c78f9f7547fab1f9fe12c3ba5bebbe6bf31299f869a"},
		{config(), "5cab4af49141b83bab863a06c8d4cdf7f39e6ea9f5f700ca5d4a91b5a74889bb"},
	} {
		Sign(key, &tc.c)
		if tc.c.MAC != tc.mac {
			t.Errorf("change %d: MAC %s, want %s", tc.c.Seq, tc.c.MAC, tc.mac)
		}
	}
}

func TestValidate(t *testing.T) {
	cases := map[string]struct {
		c    Change
		want string // "" for valid
	}{
		"release":           {release(), ""},
		"config":            {config(), ""},
		"deleted":           {Change{Seq: 1, Time: time.Now(), Kind: KindConfig, Project: "hx", App: "a", Deleted: true}, ""},
		"seq":               {func() Change { c := release(); c.Seq = 0; return c }(), "seq must be above 0"},
		"no time":           {func() Change { c := release(); c.Time = time.Time{}; return c }(), "time is required"},
		"kind":              {func() Change { c := release(); c.Kind = "deploy"; return c }(), "kind must be"},
		"project":           {func() Change { c := release(); c.Project = "../etc"; return c }(), "project"},
		"app":               {func() Change { c := release(); c.App = "Outpatient"; return c }(), "app"},
		"version":           {func() Change { c := release(); c.Version = ".hidden"; return c }(), "version"},
		"digest":            {func() Change { c := release(); c.Digest = "md5:x"; return c }(), "digest"},
		"upper digest":      {func() Change { c := release(); c.Digest = "sha256:" + strings.Repeat("AB", 32); return c }(), "digest"},
		"size":              {func() Change { c := release(); c.Size = -1; return c }(), "size"},
		"notes":             {func() Change { c := release(); c.Notes = strings.Repeat("x", MaxNotesSize+1); return c }(), "notes"},
		"node":              {func() Change { c := release(); c.Nodes = []string{"a b"}; return c }(), "nodes[0]"},
		"release config":    {func() Change { c := release(); c.Config = json.RawMessage(`{}`); return c }(), "no config"},
		"config version":    {func() Change { c := config(); c.Version = "1"; return c }(), "no version"},
		"config array":      {func() Change { c := config(); c.Config = json.RawMessage(`[]`); return c }(), "JSON object"},
		"config null":       {func() Change { c := config(); c.Config = json.RawMessage(`null`); return c }(), "JSON object"},
		"config garbage":    {func() Change { c := config(); c.Config = json.RawMessage(`{"a":1}x`); return c }(), "not JSON"},
		"config missing":    {func() Change { c := config(); c.Config = nil; return c }(), "not JSON"},
		"deleted with body": {func() Change { c := config(); c.Deleted = true; return c }(), "deleted app has no config"},
		"pieces":            {withPieces(1234, 4096, 1), ""},
		"pieces exact":      {withPieces(8192, 4096, 2), ""},
		"pieces last short": {withPieces(8193, 4096, 3), ""},
		"pieces largest":    {withPieces(1<<30+1, MaxPieceSize, 2), ""},
		"pieces most":       {withPieces(MaxPieces*4096, 4096, MaxPieces), ""},
		"piece size alone":  {func() Change { c := withPieces(1234, 4096, 1); c.Pieces = ""; return c }(), "both or neither"},
		"pieces alone":      {func() Change { c := withPieces(1234, 4096, 1); c.PieceSize = 0; return c }(), "both or neither"},
		"piece size odd":    {withPieces(1234, 6000, 1), "power of two"},
		"piece size small":  {withPieces(1234, 2048, 1), "power of two"},
		"piece size large":  {withPieces(1234, 1<<31, 1), "power of two"},
		"piece size neg":    {withPieces(1234, -4096, 1), "power of two"},
		"too few pieces":    {withPieces(8193, 4096, 2), "pieces has 2 sums, a 8193-byte artifact has 3"},
		"too many pieces":   {withPieces(1234, 4096, 2), "pieces has 2 sums, a 1234-byte artifact has 1"},
		"beyond max pieces": {withPieces((MaxPieces+1)*4096, 4096, MaxPieces+1), "at most 65536 pieces"},
		"pieces digits":     {func() Change { c := withPieces(1234, 4096, 1); c.Pieces += "0"; return c }(), "64 digits a piece"},
		"upper pieces":      {func() Change { c := withPieces(1234, 4096, 1); c.Pieces = strings.ToUpper(c.Pieces); return c }(), "lower-case hex"},
		"non-hex pieces":    {func() Change { c := withPieces(1234, 4096, 1); c.Pieces = "g" + c.Pieces[1:]; return c }(), "lower-case hex"},
		"empty with pieces": {withPieces(0, 4096, 1), "an empty artifact has no pieces"},
		"config pieces":     {func() Change { c := config(); c.PieceSize, c.Pieces = 4096, strings.Repeat("ab", 32); return c }(), "piece_size or pieces"},
		"config piece size": {func() Change { c := config(); c.PieceSize = 4096; return c }(), "piece_size or pieces"},
		"config too large": {func() Change {
			c := config()
			c.Config = json.RawMessage(`{"x":"` + strings.Repeat("x", MaxConfigSize) + `"}`)
			return c
		}(), "at most"},
	}
	for name, tc := range cases {
		err := tc.c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.want != "" && (!errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want %q", name, err, tc.want)
		}
	}
}

func TestHoldsAddrIn(t *testing.T) {
	ranges := parseRanges([]string{"10.1.0.0/16", "fd00:a::/32", "192.168.7.0/24"})
	for s, want := range map[string]bool{
		"10.1.0.5":                       true,
		"10.1.0.5:6379":                  true,
		"redis://10.1.255.1:6379/0":      true,
		"jdbc:mysql://10.1.2.3:3306/yb":  true,
		"a=10.2.0.1,b=10.1.9.9":          true,
		"[fd00:a::5]:80":                 true,
		"http://[fd00:a:1::2]/x":         true,
		"::ffff:10.1.0.1":                true,
		"192.168.7.10":                   true,
		"10.2.0.5":                       false,
		"10.1.0":                         false,
		"version 10.1.0.5.1":             false,
		"redis.dc1.example:6379":         false,
		"${center.redis}":                false,
		"fd00:b::1":                      false,
		"de:ad:be:ef:00:01":              false,
		"192.168.70.1":                   false,
		"http://dead:beef@10.3.0.1:8080": false,
	} {
		if got := holdsAddrIn(s, ranges); got != want {
			t.Errorf("%q: got %v", s, got)
		}
	}
}

func TestDiffAndFlags(t *testing.T) {
	src, _ := decodeObject([]byte(`{"a":1,"b":{"c":[1,2],"d":"x"},"e":"10.1.0.1"}`))
	tgt, _ := decodeObject([]byte(`{"a":1.0,"b":{"c":[1,2],"f":null}}`))
	var got []string
	for _, d := range diff(src, tgt) {
		got = append(got, d.Path+":"+string(d.Source)+":"+string(d.Target))
	}
	want := "a:1:1.0 b.d:\"x\": b.f::null e:\"10.1.0.1\":"
	if strings.Join(got, " ") != want {
		t.Fatalf("diff: %q", got)
	}
	f := flags(src, []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")})
	if len(f) != 1 || f[0].Path != "e" {
		t.Fatalf("flags: %+v", f)
	}
}

func TestTaskConfigValidate(t *testing.T) {
	c := TaskConfig{
		ID: "bad id", Kind: TaskKindConfig, Batch: 5000,
		Version:  VersionPolicy{Mode: ModeCopy},
		Config:   ConfigPolicy{Apps: []string{"OK"}, Exclude: []string{""}, SourceRanges: []string{"10.1.0.0/16", "10.1/8"}},
		Wait:     Duration(2 * time.Minute),
		RetryMin: Duration(time.Minute), RetryMax: Duration(time.Second),
	}
	err := c.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("%v", err)
	}
	for _, path := range []string{"id", "batch", "version", "config.apps[0]", "config.exclude[0]", "config.source_ranges[1]", "wait", "retry_min"} {
		if ve.Fields()[path] == "" {
			t.Errorf("no error for %s: %v", path, ve.Fields())
		}
	}
	if len(ve.Fields()) != 8 {
		t.Errorf("fields: %v", ve.Fields())
	}
	ok := TaskConfig{ID: "hx.versions", Kind: TaskKindVersion, Version: VersionPolicy{Nodes: map[string]string{"a1": "b1"}}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	var round TaskConfig
	b, _ := json.Marshal(TaskConfig{ID: "x", Kind: TaskKindConfig, Wait: Duration(5 * time.Second)})
	if err := json.Unmarshal(b, &round); err != nil || round.Wait != Duration(5*time.Second) || !strings.Contains(string(b), `"wait":"5s"`) {
		t.Fatalf("%s: %v", b, err)
	}
	if err := (&Binding{ID: "b1", Kind: "tenant", Source: "Team A", Target: "team-b"}).Validate(); err == nil || !strings.Contains(err.Error(), "kind") || !strings.Contains(err.Error(), "source") {
		t.Fatalf("binding: %v", err)
	}
	if err := (&Binding{ID: "b1", Kind: BindingTeam, Source: "team-a", Target: "team-b"}).Validate(); err != nil {
		t.Fatal(err)
	}
}
