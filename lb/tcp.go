package lb

import (
	"bufio"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// serveTCP forwards a tcp listener's connection to a server of the default
// group. A server that refuses the connect is counted as failed and the next
// one is tried, so a dead server costs new connections nothing.
func (l *listener) serveTCP(c net.Conn, ip []byte, snap *listenerSnap) {
	defer c.Close()
	g := snap.def
	var t tried
	for attempt := 0; attempt < g.maxAttempts; attempt++ {
		m := g.pick(ip, &t)
		if m == nil {
			break
		}
		srv := m.srv
		t.add(srv)
		uc, err := l.b.dialServer(srv, g.connectTimeout)
		if err != nil {
			srv.passiveFailure(g, err)
			continue
		}
		srv.passiveSuccess()
		srv.requests.Add(1)
		srv.active.Add(1)
		start := time.Now()
		tunnel(c, nil, uc.conn.Conn, nil, snap.idleTimeout)
		srv.latency.observe(time.Since(start))
		srv.active.Add(-1)
		srv.pool.drop(uc)
		return
	}
	l.b.countRejected(503)
}

var tunnelBufs = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// tunnel copies bytes both ways between a and b until both directions end,
// either side fails, or neither direction moved for idle. ar and br hold
// bytes already read from a and b, if any.
func tunnel(a net.Conn, ar *bufio.Reader, b net.Conn, br *bufio.Reader, idle time.Duration) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	done := make(chan struct{})
	go func() {
		pipe(b, a, ar, idle, &last)
		close(done)
	}()
	pipe(a, b, br, idle, &last)
	<-done
	a.Close()
	b.Close()
}

// pipe copies from src (after the bytes buffered in pending) to dst. When
// src ends it half-closes dst so the peer sees the end too; on an error it
// closes both to end the other direction.
func pipe(dst, src net.Conn, pending *bufio.Reader, idle time.Duration, last *atomic.Int64) {
	if pending != nil && pending.Buffered() > 0 {
		b, _ := pending.Peek(pending.Buffered())
		if _, err := dst.Write(b); err != nil {
			src.Close()
			dst.Close()
			return
		}
	}
	buf := tunnelBufs.Get().(*[32 << 10]byte)
	defer tunnelBufs.Put(buf)
	for {
		src.SetReadDeadline(time.Now().Add(idle))
		n, err := src.Read(buf[:])
		if n > 0 {
			last.Store(time.Now().UnixNano())
			dst.SetWriteDeadline(time.Now().Add(idle))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				dst.Close()
				return
			}
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && time.Since(time.Unix(0, last.Load())) < idle {
			continue // the other direction is busy
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, net.ErrClosed) {
			if cw.CloseWrite() == nil {
				return
			}
		}
		src.Close()
		dst.Close()
		return
	}
}
