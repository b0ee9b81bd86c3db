package lb

import (
	"net"
	"syscall"
	"unsafe"
)

// alive tells whether an idle connection is still usable, without blocking:
// only "nothing to read yet" is; end-of-file, an error or unexpected bytes
// mean the server closed it or broke the protocol.
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		ok = errno == syscall.EAGAIN
		return true
	})
	return ok && err == nil
}
