package appsync

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shuanghuo/shuanghuo/internal/names"
)

// ChangeKind says what a Change changes.
type ChangeKind string

// The kinds of change.
const (
	// KindRelease: a version of an app was released in the source center.
	// Version sync tasks apply these.
	KindRelease ChangeKind = "release"
	// KindConfig: an app's configuration was written or the app deleted in
	// the source center. Config sync tasks apply these.
	KindConfig ChangeKind = "config"
)

// Limits of a valid Change.
const (
	// MinKeySize is the least length of the key the two centers share to
	// sign and verify changes.
	MinKeySize = 32
	// MaxConfigSize bounds Change.Config in bytes.
	MaxConfigSize = 1 << 20
	// MaxNotesSize bounds Change.Notes in bytes, as deploy bounds a
	// version's notes.
	MaxNotesSize = 65536
	// MaxNodes bounds Change.Nodes.
	MaxNodes = 1000
	// MinPieceSize and MaxPieceSize bound Change.PieceSize, a power of two.
	MinPieceSize = 4096
	MaxPieceSize = 1 << 30
	// MaxPieces bounds the piece sums of a change, so that they add at most
	// 4 MiB of hex to it: 128 GiB of artifact at 2 MiB pieces. A source
	// picks a piece size that keeps a larger artifact within it.
	MaxPieces = 1 << 16
)

// Change is one entry of a source center's ordered change feed. A feed is
// append-only: each entry is written once, with a seq greater than the one
// before, and never changes, so (feed, seq) names a change for good.
type Change struct {
	// Seq orders the feed, strictly increasing, starting above 0. A task's
	// cursor is the seq of the last change it is done with.
	Seq int64 `json:"seq"`
	// Time is when the change happened in the source center.
	Time time.Time  `json:"time"`
	Kind ChangeKind `json:"kind"`
	// Project is the source center's project id; a ProjectMap maps it to
	// the target's.
	Project string `json:"project"`
	// App names the app within its project. Apps keep their names across
	// centers.
	App string `json:"app"`

	// Version names the released version (KindRelease).
	Version string `json:"version,omitempty"`
	// Digest is the sha256 of the version's artifact, "sha256:<64 lower-case
	// hex>" (KindRelease).
	Digest string `json:"digest,omitempty"`
	// Size is the artifact's length in bytes (KindRelease).
	Size int64 `json:"size,omitempty"`
	// Notes are the version's notes (KindRelease).
	Notes string `json:"notes,omitempty"`
	// Nodes are the source nodes the version was released to (KindRelease).
	Nodes []string `json:"nodes,omitempty"`
	// PieceSize and Pieces, when the source gives them, are the sha256 of
	// each PieceSize-byte piece of the artifact in order (the last one may
	// be shorter; an empty artifact has none), in lower-case hex, 64 digits
	// a piece (KindRelease). The source computed them from the same bytes
	// as Digest, in one pass, and they are signed with it, so a Sink may
	// check the artifact piece by piece, on every core, instead of hashing
	// it whole in one sequential stream.
	PieceSize int64  `json:"piece_size,omitempty"`
	Pieces    string `json:"pieces,omitempty"`

	// Config is the app's whole configuration after the change, a JSON
	// object (KindConfig). Absent when Deleted.
	Config json.RawMessage `json:"config,omitempty"`
	// Deleted says the app was deleted (KindConfig).
	Deleted bool `json:"deleted,omitempty"`

	// MAC is the hex HMAC-SHA256, under the key the centers share, of the
	// change's canonical encoding (see Sign).
	MAC string `json:"mac,omitempty"`
}

// ValidateKey checks that key can sign changes: at least MinKeySize bytes.
func ValidateKey(key []byte) error {
	if len(key) < MinKeySize {
		return fmt.Errorf("%w: the shared key has %d bytes, needs at least %d", ErrInvalid, len(key), MinKeySize)
	}
	return nil
}

// Sign sets c.MAC to the HMAC-SHA256 under key of c's canonical encoding.
// The key must pass ValidateKey; New, FeedHandler and NewHTTPSource check it.
//
// The canonical encoding is the JSON object, with keys in this order,
//
//	{"v":1,"seq":…,"time":…,"kind":…,"project":…,"app":…,"version":…,
//	 "digest":…,"size":…,"notes":…,"nodes":[…],"config":…,"deleted":…,
//	 "piece_size":…,"pieces":…}
//
// where time is in UTC as RFC 3339 with nanoseconds, nodes is null when
// empty, piece_size and pieces are left out when 0 and empty (so that a
// change without piece sums has the MAC it had before they existed), and
// config is the configuration with its object keys sorted and no spaces
// (null when absent; a JSON string of its bytes when it is not JSON).
// Every field but MAC is covered, and re-encoding a change on the wire
// (spaces, escapes, time zones) does not change its MAC.
func Sign(key []byte, c *Change) {
	c.MAC = hex.EncodeToString(mac(key, c))
}

// Verify checks c.MAC against c's content under key. The error wraps
// ErrForged when they do not match, ErrInvalid when key is too short.
func Verify(key []byte, c *Change) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	got, err := hex.DecodeString(c.MAC)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: change %d: MAC is not %d hex digits", ErrForged, c.Seq, 2*sha256.Size)
	}
	if !hmac.Equal(got, mac(key, c)) {
		return fmt.Errorf("%w: change %d: MAC does not match", ErrForged, c.Seq)
	}
	return nil
}

// macFields is the canonical encoding of a change; its field order is the
// order of the encoding.
type macFields struct {
	V       int             `json:"v"`
	Seq     int64           `json:"seq"`
	Time    string          `json:"time"`
	Kind    ChangeKind      `json:"kind"`
	Project string          `json:"project"`
	App     string          `json:"app"`
	Version string          `json:"version"`
	Digest  string          `json:"digest"`
	Size    int64           `json:"size"`
	Notes   string          `json:"notes"`
	Nodes   []string        `json:"nodes"`
	Config  json.RawMessage `json:"config"`
	Deleted bool            `json:"deleted"`
	// Last, and left out when empty: see Sign.
	PieceSize int64  `json:"piece_size,omitempty"`
	Pieces    string `json:"pieces,omitempty"`
}

func mac(key []byte, c *Change) []byte {
	f := macFields{
		V: 1, Seq: c.Seq, Time: c.Time.UTC().Format(time.RFC3339Nano), Kind: c.Kind,
		Project: c.Project, App: c.App, Version: c.Version, Digest: c.Digest, Size: c.Size,
		Notes: c.Notes, Deleted: c.Deleted, Config: canonicalConfig(c.Config),
		PieceSize: c.PieceSize, Pieces: c.Pieces,
	}
	if len(c.Nodes) > 0 {
		f.Nodes = c.Nodes
	}
	b, err := json.Marshal(f)
	if err != nil {
		// Unreachable: every field marshals, Config being valid JSON.
		panic(fmt.Sprintf("appsync: canonical encoding: %v", err))
	}
	h := hmac.New(sha256.New, key)
	h.Write(b)
	return h.Sum(nil)
}

// canonicalConfig returns raw with sorted keys and no spaces, "null" when
// absent, or the JSON string of raw when raw is not JSON (so that a garbled
// config still has a MAC, and Validate rejects it).
func canonicalConfig(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	if b, err := canonicalJSON(raw); err == nil {
		return b
	}
	b, _ := json.Marshal(string(raw))
	return b
}

// canonicalJSON decodes raw (numbers kept as written) and encodes it again
// with sorted object keys, no spaces and no HTML escaping.
func canonicalJSON(raw []byte) ([]byte, error) {
	v, err := decodeJSON(raw)
	if err != nil {
		return nil, err
	}
	return encodeJSON(v)
}

// decodeJSON decodes exactly one JSON value, numbers as json.Number.
func decodeJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

// encodeJSON encodes v as canonicalJSON does.
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Validate checks that c is a change a task may apply. Its MAC is not
// checked here (see Verify). The error wraps ErrMalformed and lists every
// problem found.
func (c *Change) Validate() error {
	var p []string
	bad := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	if c.Seq <= 0 {
		bad("seq must be above 0, got %d", c.Seq)
	}
	if c.Time.IsZero() {
		bad("time is required")
	}
	if !names.Valid(c.Project) {
		bad("project %q is not a name (lower-case letters, digits, '-', '_', at most 63)", c.Project)
	}
	if !names.Valid(c.App) {
		bad("app %q is not a name (lower-case letters, digits, '-', '_', at most 63)", c.App)
	}
	switch c.Kind {
	case KindRelease:
		if !names.ValidVersion(c.Version) {
			bad("version %q is not a version name (letters, digits, '.', '-', '_', '+', at most 64)", c.Version)
		}
		if !validDigest(c.Digest) {
			bad("digest %q is not sha256:<64 lower-case hex digits>", c.Digest)
		}
		if c.Size < 0 {
			bad("size must not be negative, got %d", c.Size)
		}
		if len(c.Notes) > MaxNotesSize || !utf8.ValidString(c.Notes) {
			bad("notes must be UTF-8 of at most %d bytes", MaxNotesSize)
		}
		if len(c.Nodes) > MaxNodes {
			bad("at most %d nodes, got %d", MaxNodes, len(c.Nodes))
		}
		for i, n := range c.Nodes {
			if !names.Valid(n) {
				bad("nodes[%d] %q is not a name", i, n)
			}
		}
		if p := c.pieceProblem(); p != "" {
			bad("%s", p)
		}
		if len(c.Config) > 0 || c.Deleted {
			bad("a release change has no config and is not deleted")
		}
	case KindConfig:
		if c.Version != "" || c.Digest != "" || c.Size != 0 || c.Notes != "" || len(c.Nodes) > 0 || c.PieceSize != 0 || c.Pieces != "" {
			bad("a config change has no version, digest, size, notes, nodes, piece_size or pieces")
		}
		switch {
		case c.Deleted && len(c.Config) > 0:
			bad("a deleted app has no config")
		case !c.Deleted && len(c.Config) > MaxConfigSize:
			bad("config has %d bytes, at most %d", len(c.Config), MaxConfigSize)
		case !c.Deleted:
			if v, err := decodeJSON(c.Config); err != nil {
				bad("config is not JSON: %v", err)
			} else if _, ok := v.(map[string]any); !ok {
				bad("config must be a JSON object")
			}
		}
	default:
		bad("kind must be release or config, got %q", c.Kind)
	}
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("%w: change %d: %s", ErrMalformed, c.Seq, strings.Join(p, "; "))
}

// pieceProblem says what is wrong with the piece sums of a release change,
// "" when nothing is.
func (c *Change) pieceProblem() string {
	switch {
	case c.PieceSize == 0 && c.Pieces == "":
		return ""
	case c.PieceSize == 0 || c.Pieces == "":
		return "piece_size and pieces go together: both or neither"
	case c.PieceSize < MinPieceSize || c.PieceSize > MaxPieceSize || c.PieceSize&(c.PieceSize-1) != 0:
		return fmt.Sprintf("piece_size must be a power of two from %d to %d, got %d", MinPieceSize, MaxPieceSize, c.PieceSize)
	case len(c.Pieces) > 64*MaxPieces:
		return fmt.Sprintf("at most %d pieces, got %d hex digits", MaxPieces, len(c.Pieces))
	case len(c.Pieces)%64 != 0 || !lowerHex(c.Pieces):
		return "pieces must be lower-case hex, 64 digits a piece"
	case c.Size == 0:
		return "an empty artifact has no pieces"
	case c.Size < 0:
		return "" // Validate reports the size.
	}
	got, want := int64(len(c.Pieces)/64), c.Size/c.PieceSize
	if c.Size%c.PieceSize != 0 {
		want++
	}
	if got != want {
		return fmt.Sprintf("pieces has %d sums, a %d-byte artifact has %d pieces of %d bytes", got, c.Size, want, c.PieceSize)
	}
	return ""
}

func validDigest(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	return ok && len(h) == 64 && lowerHex(h)
}

func lowerHex(s string) bool {
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}
