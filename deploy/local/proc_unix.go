//go:build unix && !linux

package local

import (
	"errors"
	"syscall"
)

// sysProcAttr puts an instance's process in a session (and process group) of
// its own, without the driver's controlling terminal, run as cred's user when
// set.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true, Credential: cred}
}

// killGroup sends sig to the process group led by pid.
func killGroup(pid int, sig syscall.Signal) {
	if pid > 0 {
		_ = syscall.Kill(-pid, sig)
	}
}

// groupAlive reports whether a process of the group led by pgid exists.
func groupAlive(pgid int) bool {
	return pgid > 0 && !errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
}
