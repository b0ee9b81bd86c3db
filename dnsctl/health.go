package dnsctl

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

const (
	defaultCheckInterval = 2 * time.Second
	defaultCheckTimeout  = time.Second
	// healthTick is how often the checker looks for due probes.
	healthTick = 100 * time.Millisecond
)

// probe is one health check of one target. Comparable: it keys the down set.
type probe struct {
	protocol string // tcp or http
	hostport string
	path     string // http only
	interval time.Duration
	timeout  time.Duration
}

func (p probe) String() string {
	return p.protocol + "://" + p.hostport + p.path
}

func newProbe(hc HealthCheck, rr dns.RR) probe {
	var ip netip.Addr
	switch rr := rr.(type) {
	case *dns.A:
		ip, _ = netip.AddrFromSlice(rr.A.To4())
	case *dns.AAAA:
		ip, _ = netip.AddrFromSlice(rr.AAAA)
	}
	p := probe{
		protocol: hc.Protocol,
		hostport: net.JoinHostPort(ip.String(), strconv.Itoa(hc.Port)),
		interval: time.Duration(hc.Interval),
		timeout:  time.Duration(hc.Timeout),
	}
	if p.protocol == "http" {
		p.path = hc.Path
	}
	return p
}

// healthChecker probes the targets of record sets with a HealthCheck and
// publishes the failing ones as an immutable set the answer path reads.
type healthChecker struct {
	down   atomic.Pointer[map[probe]struct{}]
	client *http.Client

	mu     sync.Mutex
	probes map[probe]*probeState
}

type probeState struct {
	next    time.Time
	failing bool
	running bool
}

func newHealthChecker() *healthChecker {
	return &healthChecker{
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		probes: map[probe]*probeState{},
	}
}

// downSet is the set of failing probes, nil when none fail.
func (h *healthChecker) downSet() map[probe]struct{} {
	if p := h.down.Load(); p != nil {
		return *p
	}
	return nil
}

func (h *healthChecker) unhealthy() []string {
	var out []string
	for p := range h.downSet() {
		out = append(out, p.String())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// setProbes makes the probes of snap the ones checked: new probes start
// healthy and are checked at once, vanished ones are forgotten.
func (h *healthChecker) setProbes(snap *snapshot) {
	want := map[probe]bool{}
	for _, z := range snap.zones {
		for _, n := range z.nodes {
			for _, s := range n.sets {
				for _, c := range s.centers {
					for _, p := range c.probes {
						want[p] = true
					}
				}
			}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for p := range h.probes {
		if !want[p] {
			delete(h.probes, p)
		}
	}
	for p := range want {
		if h.probes[p] == nil {
			h.probes[p] = &probeState{}
		}
	}
	h.publish()
}

// publish stores the down set. Caller holds h.mu.
func (h *healthChecker) publish() {
	down := map[probe]struct{}{}
	for p, st := range h.probes {
		if st.failing {
			down[p] = struct{}{}
		}
	}
	if len(down) == 0 {
		h.down.Store(nil)
		return
	}
	h.down.Store(&down)
}

// run probes due targets until ctx ends.
func (h *healthChecker) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(healthTick)
	defer t.Stop()
	for {
		now := time.Now()
		h.mu.Lock()
		for p, st := range h.probes {
			if st.running || now.Before(st.next) {
				continue
			}
			st.running = true
			wg.Go(func() {
				ok := h.check(ctx, p)
				h.mu.Lock()
				defer h.mu.Unlock()
				st.running = false
				st.next = time.Now().Add(p.interval)
				if st.failing == ok && h.probes[p] == st {
					st.failing = !ok
					h.publish()
				}
			})
		}
		h.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (h *healthChecker) check(ctx context.Context, p probe) bool {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if p.protocol == "tcp" {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", p.hostport)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.String(), nil)
	if err != nil {
		return false
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode < http.StatusInternalServerError
}
