package lb

import (
	"context"
	"sync"
	"time"
)

// EventKind names what happened.
type EventKind string

// Event kinds.
const (
	EventServerUp        EventKind = "server_up"
	EventServerDown      EventKind = "server_down"
	EventServerDraining  EventKind = "server_draining"
	EventServerUndrained EventKind = "server_undrained"
	EventConfigApplied   EventKind = "config_applied"
	EventConfigRejected  EventKind = "config_rejected"
)

// Event is one change a monitor follows.
type Event struct {
	Time time.Time `json:"time"`
	Kind EventKind `json:"kind"`
	// Group, Server, Zone and Role name the server of server events.
	Group  string `json:"group,omitempty"`
	Server string `json:"server,omitempty"`
	Zone   string `json:"zone,omitempty"`
	Role   Role   `json:"role,omitempty"`
	// Version is the config version of config events.
	Version uint64 `json:"version,omitempty"`
	// Reason says why: the failed check, "rollback to 3", the rejection.
	Reason string `json:"reason,omitempty"`
}

// subscriberBuffer is how many events a subscriber may fall behind before
// it misses events.
const subscriberBuffer = 256

type hub struct {
	mu     sync.Mutex
	subs   map[chan Event]struct{}
	closed bool
}

// Subscribe returns a channel of events that is closed when ctx ends or the
// balancer closes. Events are never waited for: a subscriber that falls
// more than 256 events behind misses the newer ones, so read it promptly
// and take Status for the full picture.
func (b *Balancer) Subscribe(ctx context.Context) <-chan Event {
	ch := make(chan Event, subscriberBuffer)
	h := &b.events
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		close(ch)
		return ch
	}
	if h.subs == nil {
		h.subs = make(map[chan Event]struct{})
	}
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-b.ctx.Done():
		}
		h.mu.Lock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
		h.mu.Unlock()
	}()
	return ch
}

func (b *Balancer) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	b.log.Info("lb: "+string(e.Kind), "group", e.Group, "server", e.Server, "version", e.Version, "reason", e.Reason)
	h := &b.events
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch := range h.subs {
		close(ch)
	}
	h.subs = nil
}
