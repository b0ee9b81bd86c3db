package lb

// A server's health, in one place: the active checks (checkSpec, checker), the passive
// verdict on every request forwarded to it (attemptEnded, passiveFailure), and the state
// machine both feed (markDown, markUp), with the defaults they use (checkTimeout).

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// checkSpec is a server's active check, comparable so that a push that does
// not change it leaves the running checker (and its counters) alone.
type checkSpec struct {
	typ      CheckType
	addr     string
	path     string
	host     string
	expect   string // statuses joined by ","; empty means 200-399
	interval time.Duration
	timeout  time.Duration
	rise     int
	fall     int
}

func newCheckSpec(hc *HealthCheck, s *Server) checkSpec {
	port := s.Port
	if hc.Port != 0 {
		port = hc.Port
	}
	spec := checkSpec{
		typ:      hc.Type,
		addr:     joinHostPort(s.Address, port),
		path:     hc.Path,
		host:     hc.Host,
		interval: hc.Interval.Or(defaultCheckInterval),
		timeout:  hc.checkTimeout(),
		rise:     cmp.Or(hc.Rise, defaultRise),
		fall:     cmp.Or(hc.Fall, defaultFall),
	}
	if spec.path == "" {
		spec.path = "/"
	}
	if spec.host == "" {
		spec.host = s.Address
	}
	var codes []string
	for _, c := range hc.ExpectStatus {
		codes = append(codes, strconv.Itoa(c))
	}
	spec.expect = strings.Join(codes, ",")
	return spec
}

// checker runs one server's active checks in its own goroutine.
type checker struct {
	spec   checkSpec
	cancel context.CancelFunc
	done   chan struct{}
}

func (c *checker) stop() {
	c.cancel()
	<-c.done
}

// setCheck starts, restarts or stops the server's checker to match spec
// (nil for none).
func (s *server) setCheck(spec *checkSpec) {
	s.mu.Lock()
	old := s.checker
	if old != nil && spec != nil && old.spec == *spec {
		s.mu.Unlock()
		return
	}
	s.checker = nil
	if spec != nil && !s.retired {
		ctx, cancel := context.WithCancel(s.b.ctx)
		c := &checker{spec: *spec, cancel: cancel, done: make(chan struct{})}
		s.checker = c
		go s.runChecks(ctx, c)
	}
	s.mu.Unlock()
	if old != nil {
		old.stop()
	}
}

func (s *server) runChecks(ctx context.Context, c *checker) {
	defer close(c.done)
	defer func() {
		if p := recover(); p != nil {
			s.b.log.Error("lb: panic in health check", "group", s.group, "server", s.id, "panic", p)
		}
	}()
	t := time.NewTicker(c.spec.interval)
	defer t.Stop()
	for {
		err := s.b.check(ctx, &c.spec)
		if ctx.Err() != nil {
			return
		}
		s.checkResult(err, c.spec.rise, c.spec.fall)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check runs one active check.
func (b *Balancer) check(ctx context.Context, spec *checkSpec) error {
	ctx, cancel := context.WithTimeout(ctx, spec.timeout)
	defer cancel()
	c, err := b.dial(ctx, "tcp", spec.addr)
	if err != nil {
		return fmt.Errorf("connect %s: %w", spec.addr, err)
	}
	defer c.Close()
	if spec.typ == CheckTCP {
		return nil
	}
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: shuanghuo-lb-check\r\nConnection: close\r\n\r\n", spec.path, spec.host); err != nil {
		return fmt.Errorf("send check to %s: %w", spec.addr, err)
	}
	line, err := bufio.NewReaderSize(c, 1024).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read check answer from %s: %w", spec.addr, err)
	}
	var r response
	r.raw = []byte(line + "\r\n")
	if err := r.parse(); err != nil {
		return fmt.Errorf("check answer from %s: %w", spec.addr, err)
	}
	if !statusExpected(r.status, spec.expect) {
		return fmt.Errorf("check %s%s: status %d", spec.addr, spec.path, r.status)
	}
	return nil
}

func statusExpected(status int, expect string) bool {
	if expect == "" {
		return status >= 200 && status < 400
	}
	s := strconv.Itoa(status)
	for _, e := range strings.Split(expect, ",") {
		if e == s {
			return true
		}
	}
	return false
}

// checkTimeout is the effective timeout of hc.
func (hc *HealthCheck) checkTimeout() time.Duration {
	if hc.Timeout != 0 {
		return time.Duration(hc.Timeout)
	}
	return min(defaultCheckTimeout, hc.Interval.Or(defaultCheckInterval)/2)
}

// markDown takes the server down for reason; passive says whether requests
// (not the active checker) found the failure.
func (s *server) markDown(reason string, passive bool, passiveDownTime time.Duration) {
	s.mu.Lock()
	s.lastErr = reason
	s.rises = 0
	if !s.up || s.retired {
		s.mu.Unlock()
		return
	}
	s.up = false
	s.since = time.Now()
	s.refreshUsable()
	if passive && s.checker == nil {
		// Without an active check nothing else would bring it back.
		s.downTimer = time.AfterFunc(passiveDownTime, func() { s.markUp("passive down time over") })
	}
	zone, role := s.zone, s.role
	s.mu.Unlock()
	s.pool.closeIdle()
	s.b.emit(Event{Kind: EventServerDown, Group: s.group, Server: s.id, Zone: zone, Role: role, Reason: reason})
}

func (s *server) markUp(reason string) {
	s.mu.Lock()
	if s.up || s.retired {
		s.mu.Unlock()
		return
	}
	s.up = true
	s.since = time.Now()
	s.upSince.Store(s.since.UnixNano())
	s.fails.Store(0)
	s.checkFalls = 0
	s.refreshUsable()
	zone, role := s.zone, s.role
	s.mu.Unlock()
	s.b.emit(Event{Kind: EventServerUp, Group: s.group, Server: s.id, Zone: zone, Role: role, Reason: reason})
}

// attemptEnded is the passive check of one forwarded request: a failure that is the server's
// fault (not a client that sent garbage or left) or a 5xx answer counts against it; a good
// answer resets the count.
func (s *server) attemptEnded(g *group, res result, status int) {
	switch {
	case res.err != nil && res.serverFault:
		s.passiveFailure(g, res.err)
	case res.oc == done && status >= 500:
		s.passiveFailure(g, errors.New("status "+strconv.Itoa(status)))
	case res.oc == done:
		s.passiveSuccess()
	}
}

// passiveFailure records a failed request; enough in a row take the server down.
func (s *server) passiveFailure(g *group, err error) {
	s.errors.Add(1)
	if int(s.fails.Add(1)) >= g.passiveFall {
		s.markDown("passive: "+err.Error(), true, g.passiveDownTime)
	}
}

func (s *server) passiveSuccess() {
	if s.fails.Load() != 0 {
		s.fails.Store(0)
	}
}

// checkResult feeds one active check into the rise/fall counters.
func (s *server) checkResult(err error, rise, fall int) {
	if err != nil {
		s.mu.Lock()
		s.lastErr = err.Error()
		s.rises = 0
		s.checkFalls++
		down := s.up && s.checkFalls >= fall
		s.mu.Unlock()
		if down {
			s.markDown(err.Error(), false, 0)
		}
		return
	}
	s.mu.Lock()
	s.checkFalls = 0
	s.rises++
	up := !s.up && s.rises >= rise
	s.mu.Unlock()
	if up {
		s.markUp("health check passed")
	}
}
