package gateway

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Algorithm is the scheme name that starts the Authorization header and the
// string to sign.
const Algorithm = "SH-HMAC-SHA256"

// EmptyBodySHA256 is the body digest of a request without a body.
const EmptyBodySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// Authorization is the parsed Authorization header of a signed request:
//
//	Authorization: SH-HMAC-SHA256 AppKey=<key>, Timestamp=<unix seconds>, Nonce=<nonce>, SignedHeaders=<h1;h2>, Signature=<hex>
type Authorization struct {
	// AppKey names the consumer.
	AppKey string
	// Timestamp is when the request was signed, in Unix seconds.
	Timestamp int64
	// Nonce is unique per request of the AppKey: 8 to 64 letters, digits,
	// '-' or '_'.
	Nonce string
	// SignedHeaders are the names of the signed header fields, lower case,
	// sorted, without duplicates; may be empty.
	SignedHeaders []string
	// Signature is the lower-case hex HMAC-SHA256 of the string to sign.
	Signature string
}

// String formats a as an Authorization header value.
func (a Authorization) String() string {
	return Algorithm + " AppKey=" + a.AppKey + ", Timestamp=" + strconv.FormatInt(a.Timestamp, 10) +
		", Nonce=" + a.Nonce + ", SignedHeaders=" + strings.Join(a.SignedHeaders, ";") + ", Signature=" + a.Signature
}

// ParseAuthorization parses an Authorization header value. It is strict:
// the scheme, each of the five parameters exactly once (in any order,
// separated by commas and optional spaces), well-formed values. Errors wrap
// ErrBadAuthorization.
func ParseAuthorization(v string) (Authorization, error) {
	var p authParts
	if err := p.parse(v); err != nil {
		return Authorization{}, err
	}
	a := Authorization{AppKey: p.appKey, Timestamp: p.timestamp, Nonce: p.nonce, Signature: p.signature}
	if p.signedHeaders != "" {
		a.SignedHeaders = strings.Split(p.signedHeaders, ";")
	}
	return a, nil
}

// authParts is a parsed Authorization header whose strings are substrings
// of the header value; parsing it allocates only for an error.
type authParts struct {
	appKey, nonce, signature string
	sig                      [sha256.Size]byte // signature decoded
	timestamp                int64
	signedHeaders            string // as in the header: names joined by ';'
}

func (a *authParts) parse(v string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrBadAuthorization}, args...)...)
	}
	if v == "" {
		return bad("missing")
	}
	rest, ok := strings.CutPrefix(v, Algorithm+" ")
	if !ok {
		return bad("scheme is not %s", Algorithm)
	}
	var seen [5]bool
	for more := true; more; {
		var part string
		part, rest, more = strings.Cut(rest, ",")
		part = strings.Trim(part, " \t")
		k, val, ok := strings.Cut(part, "=")
		if !ok {
			return bad("parameter %q has no value", truncate(part))
		}
		i := -1
		switch k {
		case "AppKey":
			i = 0
			if len(val) < 8 || len(val) > 64 || !isIdent(val, "") {
				return bad("AppKey %q", truncate(val))
			}
			a.appKey = val
		case "Timestamp":
			i = 1
			n, ok := parseDigits(val)
			if !ok {
				var err error
				n, err = strconv.ParseInt(val, 10, 64)
				if err != nil || n < 0 || len(val) > 12 || val[0] == '+' {
					return bad("Timestamp %q is not Unix seconds", truncate(val))
				}
			}
			a.timestamp = n
		case "Nonce":
			i = 2
			if len(val) < 8 || len(val) > 64 || !isIdent(val, "") {
				return bad("Nonce must be 8 to 64 letters, digits, '-' or '_'")
			}
			a.nonce = val
		case "SignedHeaders":
			i = 3
			if err := checkSignedHeaders(val); err != nil {
				return err
			}
			a.signedHeaders = val
		case "Signature":
			i = 4
			if len(val) != 2*len(a.sig) || !decodeLowerHex(a.sig[:], val) {
				return bad("Signature must be 64 lower-case hex digits")
			}
			a.signature = val
		default:
			return bad("unknown parameter %q", truncate(k))
		}
		if seen[i] {
			return bad("repeated parameter %s", k)
		}
		seen[i] = true
	}
	for i, name := range [...]string{"AppKey", "Timestamp", "Nonce", "SignedHeaders", "Signature"} {
		if !seen[i] {
			return bad("missing %s", name)
		}
	}
	return nil
}

// checkSignedHeaders checks the SignedHeaders parameter: up to 32
// lower-case field names joined by ';', sorted and unique; may be empty.
func checkSignedHeaders(val string) error {
	if val == "" {
		return nil
	}
	if strings.Count(val, ";") >= 32 {
		return fmt.Errorf("%w: more than 32 signed headers", ErrBadAuthorization)
	}
	prev := ""
	for j, rest := 0, val; ; j++ {
		h, next, more := strings.Cut(rest, ";")
		if h == "" || !isHeaderName(h) || !isLower(h) {
			return fmt.Errorf("%w: signed header %q must be a lower-case field name", ErrBadAuthorization, truncate(h))
		}
		if j > 0 && prev >= h {
			return fmt.Errorf("%w: SignedHeaders must be sorted and unique", ErrBadAuthorization)
		}
		if !more {
			return nil
		}
		prev, rest = h, next
	}
}

// isLower says whether s has no upper-case ASCII letter (s is a token, so
// this is strings.ToLower(s) == s).
func isLower(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return false
		}
	}
	return true
}

// parseDigits parses 1 to 12 decimal digits, the common Timestamp, without
// strconv's generality.
func parseDigits(s string) (int64, bool) {
	if s == "" || len(s) > 12 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// decodeLowerHex decodes s, 2*len(dst) digits 0-9 and a-f, into dst and
// says whether s was such.
func decodeLowerHex(dst []byte, s string) bool {
	for i := range dst {
		hi, lo := lowerHexValue[s[2*i]], lowerHexValue[s[2*i+1]]
		if hi|lo > 0xf {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

// lowerHexValue maps 0-9 and a-f to their values, other bytes to 0xff.
var lowerHexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
	}
	return t
}()

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

func isHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Canonical is what a signature covers. Its String is the string to sign.
type Canonical struct {
	// Method is the request method in upper case, e.g. POST.
	Method string
	// Path is the path as sent on the request line, percent-encoded, without
	// the query ("/" when empty).
	Path string
	// RawQuery is the query as sent, without '?'.
	RawQuery string
	// Timestamp and Nonce are those of the Authorization header.
	Timestamp int64
	Nonce     string
	// BodySHA256 is the lower-case hex SHA-256 of the body as sent
	// (EmptyBodySHA256 without a body).
	BodySHA256 string
	// SignedHeaders are the lower-case, sorted names of the signed fields;
	// HeaderValues holds, at the same index, each field's values as sent,
	// joined by ",".
	SignedHeaders []string
	HeaderValues  []string
}

// String returns the string to sign: these lines, joined by "\n", without
// a final newline:
//
//	SH-HMAC-SHA256
//	<method>
//	<path>
//	<canonical query>
//	<timestamp>
//	<nonce>
//	<body sha256>
//	<signed header names, joined by ";">
//	<name>:<value>      one line per signed header, in SignedHeaders order
//
// The canonical query is the query split at '&' (empty parts dropped), each
// part split at its first '=' into a name and a value (a part without '='
// has an empty value), both percent-decoded ('+' decodes to a space) and
// re-encoded per RFC 3986 (everything but A-Z a-z 0-9 - . _ ~ as %XX, upper
// hex), sorted by name and then value, written as name=value joined by '&'.
// A header value is trimmed of surrounding spaces and tabs. An invalid
// percent escape in the query is an error wrapping ErrBadQuery.
func (c *Canonical) String() (string, error) {
	b, err := appendCanonicalHead(make([]byte, 0, 256+len(c.Path)+len(c.RawQuery)), c.Method, c.Path, c.RawQuery, c.Timestamp, c.Nonce)
	if err != nil {
		return "", err
	}
	b = append(b, c.BodySHA256...)
	b = append(b, '\n')
	b = appendCanonicalHeaders(b, c.SignedHeaders, c.HeaderValues)
	return unsafe.String(unsafe.SliceData(b), len(b)), nil // b is not used again
}

// appendCanonicalHead appends the string to sign up to and including the
// newline before the body digest.
func appendCanonicalHead(b []byte, method, path, rawQuery string, timestamp int64, nonce string) ([]byte, error) {
	if path == "" {
		path = "/"
	}
	b = append(b, Algorithm...)
	b = append(b, '\n')
	b = appendUpper(b, method)
	b = append(b, '\n')
	b = append(b, path...)
	b = append(b, '\n')
	b, err := appendCanonicalQuery(b, rawQuery)
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	b = strconv.AppendInt(b, timestamp, 10)
	b = append(b, '\n')
	b = append(b, nonce...)
	b = append(b, '\n')
	return b, nil
}

// appendCanonicalHeaders appends the string to sign after the body digest
// and its newline: the signed header names and one line per header, whose
// value is values[i] (none when values is short) trimmed of spaces and tabs.
func appendCanonicalHeaders(b []byte, names, values []string) []byte {
	for i, h := range names {
		if i > 0 {
			b = append(b, ';')
		}
		b = append(b, h...)
	}
	for i, h := range names {
		b = append(b, '\n')
		b = append(b, h...)
		b = append(b, ':')
		if i < len(values) {
			b = append(b, strings.Trim(values[i], " \t")...)
		}
	}
	return b
}

// appendUpper appends strings.ToUpper(s), without allocating for ASCII.
func appendUpper(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return append(b, strings.ToUpper(s)...)
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// CanonicalQuery canonicalises a raw query as Canonical.String describes.
func CanonicalQuery(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	b, err := appendCanonicalQuery(make([]byte, 0, len(raw)+8), raw)
	if err != nil {
		return "", err
	}
	return unsafe.String(unsafe.SliceData(b), len(b)), nil // b is not used again
}

type queryPair struct{ k, v string }

// appendCanonicalQuery appends the canonical form of raw to b. It does not
// allocate for a query of up to 16 parameters that need no re-encoding.
func appendCanonicalQuery(b []byte, raw string) ([]byte, error) {
	if raw == "" {
		return b, nil
	}
	var arr [16]queryPair
	pairs := arr[:0]
	for rest := raw; rest != ""; {
		part := rest
		if i := strings.IndexByte(rest, '&'); i >= 0 {
			part, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, err := url.QueryUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrBadQuery, truncate(part), err)
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrBadQuery, truncate(part), err)
		}
		pairs = append(pairs, queryPair{escape(dk), escape(dv)})
	}
	// Pairs that compare equal are equal: the order is that of sort.Slice.
	slices.SortFunc(pairs, func(a, b queryPair) int {
		if c := strings.Compare(a.k, b.k); c != 0 {
			return c
		}
		return strings.Compare(a.v, b.v)
	})
	for i, p := range pairs {
		if i > 0 {
			b = append(b, '&')
		}
		b = append(b, p.k...)
		b = append(b, '=')
		b = append(b, p.v...)
	}
	return b, nil
}

// escape percent-encodes everything but RFC 3986's unreserved characters.
func escape(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexUpper = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hexUpper[c>>4], hexUpper[c&15])
		}
	}
	return string(b)
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// Sign returns the signature of a string to sign: the lower-case hex
// HMAC-SHA256 of stringToSign keyed with secret (its bytes as written).
func Sign(secret, stringToSign string) string {
	return hex.EncodeToString(macOf([]byte(secret), stringToSign))
}

// BodySHA256 returns the lower-case hex SHA-256 of body.
func BodySHA256(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// DefaultSignedHeaders are the fields a Signer signs when present.
var DefaultSignedHeaders = []string{"content-type", "host"}

// Signer signs outgoing requests for one consumer. Its zero Now and Nonce
// use the clock and crypto/rand. A Signer is safe for concurrent use.
type Signer struct {
	// AppKey and Secret are the consumer's credentials.
	AppKey, Secret string
	// Headers are the fields to sign when present (Host is always present).
	// Default DefaultSignedHeaders.
	Headers []string
	// Now returns the signing time. Default time.Now.
	Now func() time.Time
	// Nonce returns a fresh nonce. Default NewNonce.
	Nonce func() string
}

// Sign adds the Authorization header to req, reading its body to digest it
// and putting back an identical one (req.GetBody too).
func (s *Signer) Sign(req *http.Request) error {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return fmt.Errorf("gateway: sign %s %s: read body: %w", req.Method, req.URL.Path, err)
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.ContentLength = int64(len(body))
	}
	now, nonce := time.Now, NewNonce
	if s.Now != nil {
		now = s.Now
	}
	if s.Nonce != nil {
		nonce = s.Nonce
	}
	names := s.Headers
	if names == nil {
		names = DefaultSignedHeaders
	}
	c := Canonical{
		Method:     req.Method,
		Path:       req.URL.EscapedPath(),
		RawQuery:   req.URL.RawQuery,
		Timestamp:  now().Unix(),
		Nonce:      nonce(),
		BodySHA256: BodySHA256(body),
	}
	if c.Method == "" {
		c.Method = http.MethodGet
	}
	var signed []string
	for _, h := range names {
		h = strings.ToLower(h)
		if h == "host" {
			signed = append(signed, h)
			continue
		}
		if len(req.Header.Values(h)) > 0 {
			signed = append(signed, h)
		}
	}
	sort.Strings(signed)
	signed = dedupe(signed)
	for _, h := range signed {
		if h == "host" {
			host := req.Host
			if host == "" {
				host = req.URL.Host
			}
			c.HeaderValues = append(c.HeaderValues, host)
			continue
		}
		c.HeaderValues = append(c.HeaderValues, strings.Join(req.Header.Values(h), ","))
	}
	c.SignedHeaders = signed
	sts, err := c.String()
	if err != nil {
		return fmt.Errorf("gateway: sign %s %s: %w", req.Method, req.URL.Path, err)
	}
	a := Authorization{AppKey: s.AppKey, Timestamp: c.Timestamp, Nonce: c.Nonce, SignedHeaders: signed, Signature: Sign(s.Secret, sts)}
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	req.Header.Set("Authorization", a.String())
	return nil
}

func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// Transport returns an http.RoundTripper that signs every request with s
// and sends it with base (http.DefaultTransport when nil). The caller's
// request is not modified: a signed clone is sent.
func (s *Signer) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &signingTransport{s: s, base: base}
}

type signingTransport struct {
	s    *Signer
	base http.RoundTripper
}

func (t *signingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	if err := t.s.Sign(r); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	return t.base.RoundTrip(r)
}

// NewNonce returns 16 random bytes in hex.
func NewNonce() string { return randomHex(16) }

// GenerateSecret returns a new AppSecret: 32 random bytes in hex.
func GenerateSecret() string { return randomHex(32) }

// GenerateAppKey returns a new AppKey: "ak" and 12 random bytes in hex.
func GenerateAppKey() string { return "ak" + randomHex(12) }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// macOf returns the HMAC-SHA256 of s keyed with key.
func macOf(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	io.WriteString(m, s)
	return m.Sum(nil)
}
