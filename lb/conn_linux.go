package lb

import (
	"io"
	"net"
	"os"
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
	err = rc.Read(func(fd uintptr) bool {
		ok = peekAlive(fd)
		return true
	})
	return ok && err == nil
}

// peekAlive is alive for a socket.
func peekAlive(fd uintptr) bool {
	var buf [1]byte
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return errno == syscall.EAGAIN
}

// rawConn returns the socket of an accepted connection for serveInPoller,
// or nil when c is not a plain socket.
func rawConn(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// readFD reads from a non-blocking socket; errWouldBlock when it is empty.
// A read that cannot block needs no notice to the scheduler, which a
// system call otherwise gives (and with it a wakeup of the runtime's
// monitor thread after every idle moment).
func readFD(fd int, p []byte) (int, error) {
	for {
		r, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
		n := int(r)
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			return 0, errWouldBlock
		case errno != 0:
			return 0, os.NewSyscallError("read", errno)
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// writeFD writes to a non-blocking socket, without notice to the scheduler
// (see readFD); syscall.EAGAIN when the socket takes nothing.
func writeFD(fd int, p []byte) (int, error) {
	for {
		r, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
		switch errno {
		case 0:
			return int(r), nil
		case syscall.EINTR:
			continue
		}
		return 0, errno
	}
}
