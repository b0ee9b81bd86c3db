package appsync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shuanghuo/shuanghuo/internal/names"
)

// ChecksumHeader carries an artifact's sha256, in hex, in the feed protocol.
const ChecksumHeader = "X-Checksum-Sha256"

// FeedHandler serves feed over HTTP, signing each change with key, for an
// HTTPSource in the other center. Mount it with http.StripPrefix, so that
// the paths it sees are:
//
//	GET /?after=N&limit=M&wait=5s
//	    → 200 {"changes":[…],"head":H,"pending":P}: the changes after seq
//	      N (default 0), at most M (default 100, at most 1000), waiting up
//	      to wait (default 0, at most 1m) for one; P, when the Feed counts
//	      it, is how many changes follow N in all. Each change is a Change
//	      as JSON, signed; a release may carry its artifact's piece sums
//	      (piece_size, pieces).
//	GET /artifacts/{project}/{app}/{version}
//	    → 200 the artifact's bytes, with X-Checksum-Sha256: <hex> and its
//	      Content-Length; 404 for an unknown version.
//
// Errors answer {"error":{"code":…,"message":…}}: 400 bad_request for a
// bad parameter, 404 not_found, 405 method_not_allowed, 500 internal. The
// handler does not authenticate: wrap it with the server's authentication
// (HTTPSource sends a bearer token).
func FeedHandler(feed Feed, key []byte) (http.Handler, error) {
	if feed == nil {
		return nil, fmt.Errorf("%w: FeedHandler needs a Feed", ErrInvalid)
	}
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	return &feedHandler{feed: feed, key: slices.Clone(key)}, nil
}

type feedHandler struct {
	feed Feed
	key  []byte
}

func (h *feedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeFeedError(w, http.StatusMethodNotAllowed, "method_not_allowed", "the feed answers GET only, not "+r.Method)
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/")
	switch {
	case p == "":
		h.changes(w, r)
	case strings.HasPrefix(p, "artifacts/"):
		h.artifact(w, r, strings.TrimPrefix(p, "artifacts/"))
	default:
		writeFeedError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no such feed resource %q", r.URL.Path))
	}
}

func (h *feedHandler) changes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, limit, wait := int64(0), DefaultBatch, time.Duration(0)
	var problems []string
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			problems = append(problems, fmt.Sprintf("after must be a seq of 0 or more, got %q", s))
		}
		after = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxBatch {
			problems = append(problems, fmt.Sprintf("limit must be 1 to %d, got %q", MaxBatch, s))
		}
		limit = n
	}
	if s := q.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > MaxWait {
			problems = append(problems, fmt.Sprintf("wait must be a duration from 0s to %s, got %q", MaxWait, s))
		}
		wait = d
	}
	if len(problems) > 0 {
		writeFeedError(w, http.StatusBadRequest, "bad_request", strings.Join(problems, "; "))
		return
	}
	page, err := h.feed.Changes(r.Context(), after, limit, wait)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away
		}
		writeFeedError(w, http.StatusInternalServerError, "internal", "read the feed: "+err.Error())
		return
	}
	out := wirePage{Changes: make([]Change, 0, min(len(page.Changes), limit)), Head: page.Head, Pending: page.Pending}
	for _, c := range page.Changes {
		if len(out.Changes) == limit {
			break
		}
		Sign(h.key, &c)
		out.Changes = append(out.Changes, c)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(out)
}

// wirePage is a Page as the feed protocol sends it.
type wirePage struct {
	Changes []Change `json:"changes"`
	Head    int64    `json:"head"`
	Pending *int64   `json:"pending,omitempty"`
}

func (h *feedHandler) artifact(w http.ResponseWriter, r *http.Request, p string) {
	parts := strings.Split(p, "/")
	if len(parts) != 3 || !names.Valid(parts[0]) || !names.Valid(parts[1]) || !names.ValidVersion(parts[2]) {
		writeFeedError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("want artifacts/{project}/{app}/{version} with valid names, got %q", p))
		return
	}
	rc, digest, size, err := h.feed.Artifact(r.Context(), parts[0], parts[1], parts[2])
	switch {
	case errors.Is(err, ErrNotFound):
		writeFeedError(w, http.StatusNotFound, "not_found", err.Error())
		return
	case err != nil:
		writeFeedError(w, http.StatusInternalServerError, "internal", "open the artifact: "+err.Error())
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(ChecksumHeader, strings.TrimPrefix(digest, "sha256:"))
	if size >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	}
	if r.Method == http.MethodHead {
		return
	}
	// A failed copy cannot be reported any more; the client sees a short
	// body and the Sink refuses it.
	_, _ = io.Copy(w, rc)
}

func writeFeedError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// HTTPSourceOptions configures an HTTPSource. URL and Key are required.
type HTTPSourceOptions struct {
	// URL is the base URL of the source center's FeedHandler, such as
	// "https://a.example/api/v1/sync/feed/".
	URL string
	// Token is sent as "Authorization: Bearer <token>". Default: none.
	Token string
	// Key is the key the two centers share; every change received is
	// verified with it.
	Key []byte
	// Client sends the requests. Default: NewClient's, which follows no
	// redirect; a client given should not either, as each request
	// carries Token. Each request is bounded as below.
	Client *http.Client
	// HeaderTimeout bounds the wait for a response's headers, beyond the
	// long-poll wait of Changes. Default: 30s.
	HeaderTimeout time.Duration
	// IdleTimeout aborts an artifact download that receives nothing for
	// this long. Default: 1m.
	IdleTimeout time.Duration
	// MaxPageSize bounds a page of changes in bytes. Default: 64 MiB.
	MaxPageSize int64
	// MaxArtifactSize bounds an artifact in bytes. Default: 16 GiB.
	MaxArtifactSize int64
}

// HTTPSource is a Source that reads a FeedHandler over HTTP. It is safe for
// concurrent use.
type HTTPSource struct {
	base *url.URL
	opts HTTPSourceOptions
}

var defaultClient = sync.OnceValue(NewClient)

// NewClient returns a client for requests to the other center, the default of an
// HTTPSource: dial, TLS and idle-connection timeouts, no overall timeout (bound each
// request with its context: artifacts stream for as long as they need), and no redirect
// followed. A redirect is answered as the response itself, a 3xx that callers treat as an
// error: following it would send the request, and its token, wherever the other center's
// answer (or whoever took its address) points, and Go keeps the Authorization header on a
// redirect to another port of the same host.
func NewClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   4,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// NewHTTPSource returns an HTTPSource for the feed at opts.URL.
func NewHTTPSource(opts HTTPSourceOptions) (*HTTPSource, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: HTTPSource URL must be an http or https URL, got %q", ErrInvalid, opts.URL)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	u.RawQuery, u.Fragment = "", ""
	if err := ValidateKey(opts.Key); err != nil {
		return nil, err
	}
	opts.Key = slices.Clone(opts.Key)
	if opts.Client == nil {
		opts.Client = defaultClient()
	}
	if opts.HeaderTimeout <= 0 {
		opts.HeaderTimeout = 30 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = time.Minute
	}
	if opts.MaxPageSize <= 0 {
		opts.MaxPageSize = 64 << 20
	}
	if opts.MaxArtifactSize <= 0 {
		opts.MaxArtifactSize = 16 << 30
	}
	return &HTTPSource{base: u, opts: opts}, nil
}

func (s *HTTPSource) get(ctx context.Context, u *url.URL) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("appsync: feed %s: %w", u.Redacted(), err)
	}
	if s.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.opts.Token)
	}
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("appsync: feed: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		err := fmt.Errorf("appsync: feed %s: HTTP %s: %s", u.Redacted(), resp.Status, bytes.TrimSpace(msg))
		if resp.StatusCode == http.StatusNotFound {
			err = fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return nil, err
	}
	return resp, nil
}

// Changes reads a page of the feed. Each change's MAC is verified on
// receipt: a change that fails is left out of Changes and listed in
// Page.Rejected. A response that is not a page (status, size, unknown
// fields, trailing data) is an error wrapping ErrProtocol.
func (s *HTTPSource) Changes(ctx context.Context, after int64, limit int, wait time.Duration) (Page, error) {
	wait = min(max(wait, 0), MaxWait)
	ctx, cancel := context.WithTimeout(ctx, wait+s.opts.HeaderTimeout)
	defer cancel()
	u := *s.base
	u.RawQuery = url.Values{
		"after": {strconv.FormatInt(after, 10)},
		"limit": {strconv.Itoa(min(max(limit, 1), MaxBatch))},
		"wait":  {wait.String()},
	}.Encode()
	resp, err := s.get(ctx, &u)
	if err != nil {
		return Page{}, err
	}
	defer resp.Body.Close()
	return decodePage(resp.Body, s.opts.Key, s.opts.MaxPageSize, time.Now)
}

// decodePage reads a page of the feed protocol from r, at most max bytes,
// and verifies each change with key.
func decodePage(r io.Reader, key []byte, maxSize int64, now func() time.Time) (Page, error) {
	lr := &io.LimitedReader{R: r, N: maxSize + 1}
	dec := json.NewDecoder(lr)
	dec.DisallowUnknownFields()
	var wp wirePage
	if err := dec.Decode(&wp); err != nil {
		if lr.N <= 0 {
			return Page{}, fmt.Errorf("%w: page larger than %d bytes", ErrProtocol, maxSize)
		}
		return Page{}, fmt.Errorf("%w: page: %w", ErrProtocol, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Page{}, fmt.Errorf("%w: page: data after the JSON object", ErrProtocol)
	}
	if wp.Head < 0 {
		return Page{}, fmt.Errorf("%w: page: head %d is negative", ErrProtocol, wp.Head)
	}
	if wp.Pending != nil && *wp.Pending < 0 {
		return Page{}, fmt.Errorf("%w: page: pending %d is negative", ErrProtocol, *wp.Pending)
	}
	p := Page{Head: wp.Head, Pending: wp.Pending, Changes: wp.Changes[:0:0]}
	for _, c := range wp.Changes {
		if err := Verify(key, &c); err != nil {
			p.Rejected = append(p.Rejected, Rejection{Seq: c.Seq, Kind: c.Kind, Project: c.Project, App: c.App, Error: err.Error(), Time: now()})
			continue
		}
		p.Changes = append(p.Changes, c)
	}
	return p, nil
}

// Artifact opens a version's artifact. The download is aborted when it
// stalls for IdleTimeout or exceeds MaxArtifactSize; the Sink verifies the
// digest. An unknown version is an error wrapping ErrNotFound.
func (s *HTTPSource) Artifact(ctx context.Context, project, app, version string) (io.ReadCloser, error) {
	u := s.base.JoinPath("artifacts", project, app, version)
	ctx, cancel := context.WithCancel(ctx)
	headers := time.AfterFunc(s.opts.HeaderTimeout, cancel)
	resp, err := s.get(ctx, u)
	if !headers.Stop() {
		if err == nil {
			resp.Body.Close()
			err = context.DeadlineExceeded
		}
		err = fmt.Errorf("appsync: feed: no response within %s: %w", s.opts.HeaderTimeout, err)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.ContentLength > s.opts.MaxArtifactSize {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("%w: artifact %s/%s %s has %d bytes, more than the limit of %d", ErrProtocol, project, app, version, resp.ContentLength, s.opts.MaxArtifactSize)
	}
	a := &artifactBody{body: resp.Body, cancel: cancel, left: s.opts.MaxArtifactSize, timeout: s.opts.IdleTimeout}
	a.idle = time.AfterFunc(s.opts.IdleTimeout, func() {
		a.stalled.Store(true)
		cancel()
	})
	return a, nil
}

// artifactBody is an artifact download that is canceled when it stalls and
// refused beyond its size limit.
type artifactBody struct {
	body    io.ReadCloser
	cancel  context.CancelFunc
	idle    *time.Timer
	timeout time.Duration
	left    int64
	stalled atomic.Bool
}

func (a *artifactBody) Read(p []byte) (int, error) {
	n, err := a.body.Read(p)
	a.idle.Reset(a.timeout)
	a.left -= int64(n)
	if a.left < 0 {
		return n, fmt.Errorf("%w: artifact larger than the size limit", ErrProtocol)
	}
	switch {
	case err == nil, errors.Is(err, io.EOF):
	case a.stalled.Load():
		err = fmt.Errorf("appsync: read the artifact: nothing received for %s: %w", a.timeout, err)
	default:
		err = fmt.Errorf("appsync: read the artifact: %w", err)
	}
	return n, err
}

func (a *artifactBody) Close() error {
	a.idle.Stop()
	err := a.body.Close()
	a.cancel()
	return err
}

// Interface guards.
var (
	_ Source     = (*HTTPSource)(nil)
	_ StateStore = (*MemoryStateStore)(nil)
)
