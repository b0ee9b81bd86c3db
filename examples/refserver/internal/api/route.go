package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
)

// Route is an endpoint a data plane serves beside its resources, such as the runs of DR
// plans. It is authenticated like every API endpoint and answers in the same envelope.
type Route struct {
	// Pattern is a ServeMux pattern under /api/v1, e.g. "GET /api/v1/dr/runs/{id}".
	Pattern string
	// Handle serves one request. A package's validation error it returns, as it is or
	// wrapped, is answered as a field error of the request.
	Handle func(c *Call) error
}

// Call is one request to a Route.
type Call struct {
	W http.ResponseWriter
	R *http.Request
	s *Server
}

// TeamID is the caller's team; empty for the platform admin.
func (c *Call) TeamID() string { return caller(c.R.Context()).TeamID }

// Sees reports whether the caller may see what belongs to teamID.
func (c *Call) Sees(teamID string) bool {
	t := caller(c.R.Context())
	return t.Admin() || t.TeamID == teamID
}

// Stopping is closed when the server begins to shut down, so that a long poll can answer
// at once instead of holding the shutdown.
func (c *Call) Stopping() <-chan struct{} { return c.s.stopping }

// Decode reads and validates the JSON body into v, as every endpoint does.
func (c *Call) Decode(v any) error { return c.s.decode(c.W, c.R, v) }

// JSON answers v.
func (c *Call) JSON(status int, v any) { writeJSON(c.W, status, v) }

// Resource reads a stored resource the caller may see; another team's answers ErrNotFound.
func (c *Call) Resource(kind, id string) (store.Resource, error) {
	var res store.Resource
	err := c.s.store.View(c.R.Context(), func(tx store.Reader) (err error) {
		res, err = tx.Resource(c.R.Context(), kind, id)
		return err
	})
	if err != nil {
		return res, err
	}
	return res, visible(c.R, kind, res.TeamID)
}

// Audit records an operation of the caller in the audit log, e.g. a DR run started.
func (c *Call) Audit(action, kind, id, teamID string, detail any) error {
	return c.s.store.Change(c.R.Context(), c.s.actor(c.R), func(tx store.Tx) error {
		return tx.Record(c.R.Context(), action, kind, id, teamID, detail)
	})
}

// Invalid is a field error of the request, for a Route's input checks.
func Invalid(fields map[string]string) error { return fieldError(fields) }

// Conflict is a 409 with a message, for a Route refusing what the state does not allow.
func Conflict(msg string) error { return newError(http.StatusConflict, codeConflict, "%s", msg) }

// BadGateway is a 502 with a message: the middleware a data plane drives (a Redis, say)
// failed or did not answer. The message is the caller's to read: no secrets in it.
func BadGateway(msg string) error { return newError(http.StatusBadGateway, codeBadGateway, "%s", msg) }

// RequestTimeout is a 408 with a message: the client sent its request too slowly.
func RequestTimeout(msg string) error {
	return newError(http.StatusRequestTimeout, codeRequestTimeout, "%s", msg)
}

func (s *Server) mountRoute(api func(string, func(http.ResponseWriter, *http.Request) error), rt Route) {
	api(rt.Pattern, func(w http.ResponseWriter, r *http.Request) error {
		return rt.Handle(&Call{W: w, R: r, s: s})
	})
}

// StreamJSON answers events as JSON lines, each flushed as it comes, until events closes, the
// client goes away or the server shuts down. The server's write timeout does not cut a
// stream short.
func StreamJSON[T any](c *Call, events <-chan T) error {
	rc := http.NewResponseController(c.W)
	_ = rc.SetWriteDeadline(time.Time{})
	c.W.Header().Set("Content-Type", "application/x-ndjson")
	c.W.WriteHeader(http.StatusOK)
	// The client has its answer at once, before the first event, which may be long in coming.
	if rc.Flush() != nil {
		return nil
	}
	enc := json.NewEncoder(c.W)
	for {
		select {
		case e, ok := <-events:
			if !ok || enc.Encode(e) != nil || rc.Flush() != nil {
				return nil
			}
		case <-c.s.stopping:
			return nil
		}
	}
}
