//go:build !linux

package lb

import (
	"net"
	"syscall"
)

// alive cannot peek without blocking here; a closed idle connection shows
// as a failed request, which idempotent requests retry.
func alive(net.Conn) bool { return true }

// rawConn returns nil: serveInPoller reads sockets the Linux way only.
func rawConn(net.Conn) syscall.RawConn { return nil }

// readFD is not called without rawConn.
func readFD(int, []byte) (int, error) { return 0, errWouldBlock }
