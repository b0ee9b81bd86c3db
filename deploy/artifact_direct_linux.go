package deploy

import (
	"os"
	"syscall"
)

// errDirectRefused is how a file system that opened a file for direct I/O
// refuses a direct write it cannot do.
var errDirectRefused = syscall.EINVAL

// openDirect opens name a second time for writing with direct I/O; nil
// where the file system does not allow it (tmpfs, for one).
func openDirect(name string) *os.File {
	f, err := os.OpenFile(name, os.O_WRONLY|syscall.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	return f
}
