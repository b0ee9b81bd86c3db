//go:build unix

package local

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// credential resolves Options.User: "uid:gid" or a user name.
func credential(name string) (*syscall.Credential, error) {
	var uid, gid uint64
	var err error
	if u, g, ok := strings.Cut(name, ":"); ok {
		if uid, err = strconv.ParseUint(u, 10, 32); err == nil {
			gid, err = strconv.ParseUint(g, 10, 32)
		}
		if err != nil {
			return nil, fmt.Errorf("user %q: want a name or uid:gid: %w", name, err)
		}
	} else {
		u, err := user.Lookup(name)
		if err != nil {
			return nil, fmt.Errorf("user %q: %w", name, err)
		}
		if uid, err = strconv.ParseUint(u.Uid, 10, 32); err == nil {
			gid, err = strconv.ParseUint(u.Gid, 10, 32)
		}
		if err != nil {
			return nil, fmt.Errorf("user %q: %w", name, err)
		}
	}
	if uid == 0 || gid == 0 {
		return nil, fmt.Errorf("user %q: must not be root (uid or gid 0): instances would run with the driver's powers", name)
	}
	// No supplementary groups: Groups empty and NoSetGroups false clear them.
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// isolate makes the node's directory root:<gid> 0750, so that only the
// node's user and root enter it, and checks that the user may pass every
// directory above it: otherwise each start would fail on its directory.
func (d *Driver) isolate() error {
	if os.Geteuid() != 0 {
		return errors.New("running instances as another user needs the driver to run as root")
	}
	dir := d.opts.Dir
	if err := os.Lchown(dir, 0, int(d.cred.Gid)); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o750); err != nil {
		return err
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !searchable(st, d.cred) {
			return fmt.Errorf("cannot reach the node's directory: %s (mode %#o) does not let uid %d gid %d pass; give others search (x) permission on it", p, uint32(st.Mode().Perm()), d.cred.Uid, d.cred.Gid)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// searchable reports whether the credential may pass through the directory.
func searchable(st os.FileInfo, cred *syscall.Credential) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := st.Mode().Perm()
	switch {
	case sys.Uid == cred.Uid:
		return perm&0o100 != 0
	case sys.Gid == cred.Gid:
		return perm&0o010 != 0
	}
	return perm&0o001 != 0
}

// shareWithGroup lets the node's group read (and run) an installed version,
// which stays root's so that instances cannot change it: each file's and
// directory's group gets its owner's read and execute bits. dir is the
// driver's alone, so walking it races with no instance.
func shareWithGroup(dir string, gid int) error {
	return filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.Type()&fs.ModeSymlink != 0 {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if err := os.Lchown(path, -1, gid); err != nil {
			return err
		}
		perm := info.Mode().Perm()
		return os.Chmod(path, perm|(perm&0o500)>>3)
	})
}
