//go:build !linux

package lb

// Event loops are Linux-only (loop_linux.go); elsewhere every connection
// is served on the goroutine path, and these stand in for the loops' types.

type loopSet struct{}

func (*loopSet) wake() {}
func (*loopSet) stop() {}

type loop struct{ idx int }

type loopConn struct{}

func (*loopConn) cut() {}

type loopUp struct{ lp *loop }

func (*loopUp) close() error { return nil }
func (*loopUp) cut()         {}

func (b *Balancer) serveInLoop(*listener, *trackedConn) bool { return false }
