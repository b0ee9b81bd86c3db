package logsvc

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
	"unicode/utf8"
)

// fileKey is a file's device and inode: what an open file is while it is open.
type fileKey struct{ dev, ino uint64 }

// tracker is one open file being read.
type tracker struct {
	src    *source
	f      *os.File
	key    fileKey
	path   string // where the file is now (a rename follows it)
	labels map[string]string
	id     string // Record.Source
	fp     bool   // id is a fingerprint
	// head holds the bytes read of a file shorter than the fingerprint, to tell when it
	// is truncated and rewritten beyond what was read between two polls.
	head  []byte
	entry *entry

	size         int64 // at the last poll
	pos          int64 // next byte to read
	lineStart    int64 // where the partial line starts
	partial      []byte
	partialTrunc bool
	joiner       joiner

	grew    time.Time // when size last grew
	gone    bool      // deleted, or no glob matches it any more
	deleted bool
	closed  bool
}

// safe is the offset before which every byte is in a record already emitted or was
// dropped: after a restart reading resumes there.
func (t *tracker) safe() int64 { return t.joiner.safe(t.lineStart) }

// candidate is a file a glob matched in this poll.
type candidate struct {
	key  fileKey
	path string
	src  *source
	size int64
}

func keyOf(fi os.FileInfo) (fileKey, uint64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileKey{}, 1
	}
	return fileKey{dev: uint64(st.Dev), ino: st.Ino}, uint64(st.Nlink)
}

// sameFile reports whether fi, from an opened path, is still the file the glob found.
func sameFile(fi os.FileInfo, k fileKey) bool {
	got, _ := keyOf(fi)
	return got == k
}

// poll expands the globs, follows the open files (renamed, deleted, grown, truncated) and
// opens the files not seen before.
func (c *Collector) poll(now time.Time) {
	seen := map[fileKey]candidate{}
	paths := map[string]bool{}
	for _, s := range c.sources {
		for _, g := range s.Paths {
			matches, _ := filepath.Glob(g) // patterns were validated
			for _, p := range matches {
				if paths[p] {
					continue
				}
				paths[p] = true
				// Lstat: a symbolic link is not followed, so that a link in a log
				// directory does not ship a file from elsewhere.
				fi, err := os.Lstat(p)
				if err != nil || !fi.Mode().IsRegular() {
					continue
				}
				k, _ := keyOf(fi)
				if _, dup := seen[k]; !dup {
					seen[k] = candidate{path: p, src: s, size: fi.Size(), key: k}
				}
			}
		}
	}
	for _, t := range slices.Clone(c.trackers) { // restart removes from c.trackers
		fi, err := t.f.Stat()
		if err != nil {
			c.log.Warn("logsvc: stat open file", "path", t.path, "err", err)
			continue
		}
		_, nlink := keyOf(fi)
		size := fi.Size()
		if c.rewritten(t, size) {
			c.restart(t, seen, now)
			continue
		}
		if cand, ok := seen[t.key]; ok {
			if cand.path != t.path {
				c.m.lag.DeleteLabelValues(t.path)
				t.path = cand.path
				t.entry.Path = cand.path
				c.dirty = true
			}
			delete(seen, t.key)
			t.gone = false
		} else {
			t.gone = true
		}
		t.deleted = nlink == 0
		if size > t.size {
			t.grew = now
		}
		t.size = size
		if !t.fp && size >= int64(c.cfg.FingerprintBytes) {
			c.identify(t)
		}
	}
	for k := range c.fresh {
		if _, ok := seen[k]; !ok {
			delete(c.fresh, k)
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(seen), func(a, b fileKey) int {
		return cmp.Compare(seen[a].path, seen[b].path)
	}) {
		// An empty file has nothing to read, and it may be a copy being written: it is
		// opened once it has a byte, when it can be told from the file it copies.
		if seen[k].size > 0 {
			c.open(seen[k], now)
		}
	}
}

// rewritten reports whether the file was truncated (copytruncate) or rewritten from the
// start: it is shorter than what was read, or its first bytes are no longer its fingerprint.
func (c *Collector) rewritten(t *tracker, size int64) bool {
	if size < t.pos {
		return true
	}
	if !t.fp {
		n, _ := t.f.ReadAt(c.buf[:len(t.head)], 0)
		return n < len(t.head) || !bytes.Equal(c.buf[:n], t.head)
	}
	if size == t.size {
		return false
	}
	fp, ok := c.fingerprint(t.f)
	return ok && fp != t.id
}

// restart handles a truncated file. When a glob matches a copy of it not opened yet (the
// copy of copytruncate: as long as what was read, starting with the same fingerprint, or
// for a shorter file the same bytes read), the tracker moves to the copy and reads it to its
// end, and the truncated file is opened as a new one. Otherwise what was read is flushed and
// the file is read again from its start under a new identity.
func (c *Collector) restart(t *tracker, seen map[fileKey]candidate, now time.Time) {
	if t.fp || len(t.head) > 0 {
		for k, cand := range seen {
			if k == t.key || cand.size < t.pos {
				continue
			}
			f, err := os.Open(cand.path)
			if err != nil {
				continue
			}
			fi, err := f.Stat()
			if err != nil || !sameFile(fi, k) || !c.isCopy(t, f) {
				f.Close()
				continue
			}
			c.fresh[t.key] = true // the truncated file, still in seen: opened as new below
			t.f.Close()
			delete(seen, k)
			c.m.lag.DeleteLabelValues(t.path)
			t.f, t.key, t.path, t.size, t.grew, t.gone = f, k, cand.path, fi.Size(), now, false
			t.entry.Path, t.entry.Dev, t.entry.Ino = cand.path, k.dev, k.ino
			c.dirty = true
			return
		}
	}
	c.finish(t, now)
	t.f.Close()
	// The old identity is gone from this file: its entry goes once the flushed records
	// are shipped, and no later file is taken for it.
	t.closed, t.deleted = true, true
	c.retired = append(c.retired, t)
	c.trackers = slices.DeleteFunc(c.trackers, func(x *tracker) bool { return x == t })
	fi, err := os.Lstat(t.path)
	if err != nil {
		return
	}
	if k, _ := keyOf(fi); k == t.key && fi.Mode().IsRegular() {
		// Read again from 0: a new identity (the file's new first bytes, or a new
		// nonce) keeps the new records' IDs apart from the old ones'.
		seen[k] = candidate{key: k, path: t.path, src: t.src, size: fi.Size()}
		c.fresh[k] = true
	}
}

// isCopy reports whether f starts as t's file did.
func (c *Collector) isCopy(t *tracker, f *os.File) bool {
	if t.fp {
		fp, ok := c.fingerprint(f)
		return ok && fp == t.id
	}
	n, _ := f.ReadAt(c.buf[:len(t.head)], 0)
	return n == len(t.head) && bytes.Equal(c.buf[:n], t.head)
}

// copyOfShort reports whether a file shorter than the fingerprint holds the start of a file
// being read: a copy (copytruncate's, before the truncation shows, or still being written),
// so it is not read twice. A different file that only starts alike is opened once it
// differs.
func (c *Collector) copyOfShort(f *os.File, size int64) bool {
	mine := make([]byte, size)
	if n, _ := f.ReadAt(mine, 0); int64(n) < size {
		return false
	}
	theirs := c.buf[:size]
	for _, o := range c.trackers {
		if o.size < size {
			continue
		}
		if n, _ := o.f.ReadAt(theirs, 0); int64(n) == size && bytes.Equal(mine, theirs) {
			return true
		}
	}
	return false
}

// finish flushes a file's partial line and pending record: the file will not grow more.
func (c *Collector) finish(t *tracker, now time.Time) {
	if len(t.partial) > 0 || t.partialTrunc {
		c.line(t, t.partial, t.lineStart, t.pos, now)
		t.partial, t.partialTrunc, t.lineStart = t.partial[:0], false, t.pos
	}
	if p, ok := t.joiner.flush(); ok {
		c.emit(t, p, now)
	}
}

// closeInactive closes files that are gone (deleted, or renamed out of every glob), read to
// their end and not grown for CloseInactive.
func (c *Collector) closeInactive(now time.Time) {
	c.trackers = slices.DeleteFunc(c.trackers, func(t *tracker) bool {
		if !t.gone || t.pos < t.size || now.Sub(t.grew) < time.Duration(c.cfg.CloseInactive) {
			return false
		}
		c.finish(t, now)
		t.f.Close()
		t.closed = true
		c.retired = append(c.retired, t)
		return true
	})
}

// open starts following a file a glob matched for the first time. A gzip file is skipped (a
// rotated file compressed after it was read); a copy of a file being read (same
// fingerprint) is skipped too. A file known from the checkpoint resumes where it was.
func (c *Collector) open(cand candidate, now time.Time) {
	f, err := os.Open(cand.path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("logsvc: open", "path", cand.path, "err", err)
		}
		return
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return
	}
	k := cand.key
	if !sameFile(fi, k) {
		f.Close() // replaced since the glob (by a link, maybe): seen again at the next poll
		return
	}
	var head [2]byte
	if n, _ := f.ReadAt(head[:], 0); n == 2 && head[0] == 0x1f && head[1] == 0x8b {
		f.Close()
		return
	}
	fresh := c.fresh[k]
	delete(c.fresh, k)
	t := &tracker{src: cand.src, f: f, key: k, path: cand.path, size: fi.Size(), grew: now}
	t.labels = maps.Clone(cand.src.labels)
	t.labels["file"] = cand.path
	t.joiner = joiner{max: cand.src.max, start: cand.src.start, cont: cand.src.cont, timeout: cand.src.timeout}
	if fp, ok := c.fingerprint(f); ok {
		for _, o := range c.trackers {
			if o.fp && o.id == fp {
				f.Close()
				return
			}
		}
		t.id, t.fp = fp, true
	} else if !fresh && c.copyOfShort(f, t.size) {
		f.Close()
		return
	}
	var e *entry
	if !fresh {
		e = c.entries[t.id]
		if e == nil {
			// Known while it was shorter than the fingerprint (it may have grown since).
			for _, o := range c.entries {
				if !o.Fingerprint && o.Dev == k.dev && o.Ino == k.ino && o.Path == cand.path {
					e = o
					break
				}
			}
		}
	}
	if e != nil && !e.Fingerprint && !sameHead(f, e) {
		// Truncated and rewritten while no collector ran: a new identity, from 0.
		delete(c.entries, e.ID)
		e = nil
		if !t.fp {
			t.id = ""
		}
	}
	switch {
	case e != nil && t.fp && !e.Fingerprint:
		delete(c.entries, e.ID)
		e.ID, e.Fingerprint = t.id, true
		c.entries[t.id] = e
	case e != nil:
		t.id = e.ID
	case t.id == "":
		t.id = shortID(k)
	}
	if e == nil {
		e = &entry{ID: t.id, Fingerprint: t.fp}
		c.entries[t.id] = e
	}
	e.Path, e.Dev, e.Ino, e.Seen = cand.path, k.dev, k.ino, now
	if e.Offset > t.size {
		e.Offset = 0 // shorter than what was shipped: rewritten while we were away
	}
	t.entry, t.pos, t.lineStart = e, e.Offset, e.Offset
	if !t.fp {
		t.head = make([]byte, t.pos)
		if n, _ := f.ReadAt(t.head, 0); n < len(t.head) {
			t.head = t.head[:n]
		}
	}
	c.dirty = true
	c.trackers = append(c.trackers, t)
}

// identify gives a file that has grown to the fingerprint's length its fingerprint.
func (c *Collector) identify(t *tracker) {
	fp, ok := c.fingerprint(t.f)
	if !ok {
		return
	}
	if c.entries[t.id] == t.entry {
		delete(c.entries, t.id)
	}
	t.id, t.fp, t.head = fp, true, nil
	t.entry.ID, t.entry.Fingerprint, t.entry.Head = fp, true, ""
	c.entries[fp] = t.entry
	c.dirty = true
}

// fingerprint hashes a file's first FingerprintBytes; ok is false while it is shorter.
func (c *Collector) fingerprint(f *os.File) (string, bool) {
	head := c.buf[:c.cfg.FingerprintBytes]
	n, err := f.ReadAt(head, 0)
	if n < len(head) || (err != nil && !errors.Is(err, io.EOF)) {
		return "", false
	}
	return headSum(head), true
}

// sameHead reports whether f still starts with the bytes an entry of a file shorter than the
// fingerprint was shipped up to.
func sameHead(f *os.File, e *entry) bool {
	b := make([]byte, e.Offset)
	n, _ := f.ReadAt(b, 0)
	return n == len(b) && headSum(b) == e.Head
}

func headSum(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// shortID names a file shorter than the fingerprint: its device and inode, and a nonce so
// that a later file with the same inode, or the same file truncated, gets other IDs.
func shortID(k fileKey) string {
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	return fmt.Sprintf("i-%x-%x-%x", k.dev, k.ino, nonce)
}

// read reads the next chunk of a file and turns its complete lines into records, stopping
// early when the batch is full.
func (c *Collector) read(t *tracker, now time.Time) {
	want := min(int64(len(c.buf)), t.size-t.pos)
	n, err := t.f.ReadAt(c.buf[:want], t.pos)
	if n == 0 {
		if err != nil && !errors.Is(err, io.EOF) {
			c.log.Warn("logsvc: read", "path", t.path, "err", err)
		}
		t.size = t.pos // try again at the next poll
		return
	}
	b := c.buf[:n]
	if h := int64(len(t.head)); !t.fp && h >= t.pos && h < t.pos+int64(n) && h < int64(c.cfg.FingerprintBytes) {
		t.head = append(t.head, b[h-t.pos:min(int64(n), int64(c.cfg.FingerprintBytes)-t.pos)]...)
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			t.addPartial(b)
			t.pos += int64(len(b))
			return
		}
		line := b[:i]
		if len(t.partial) > 0 || t.partialTrunc {
			t.addPartial(line)
			line = t.partial
		}
		t.pos += int64(i + 1)
		c.line(t, line, t.lineStart, t.pos, now)
		t.partial, t.partialTrunc, t.lineStart = t.partial[:0], false, t.pos
		b = b[i+1:]
		if c.full() {
			return
		}
	}
}

// addPartial keeps the start of a line not ended yet, no more than the limit (and a
// character's bytes, so that it is cut at a character boundary).
func (t *tracker) addPartial(b []byte) {
	room := t.src.max + utf8.UTFMax - len(t.partial)
	if len(b) > room {
		b = b[:max(room, 0)]
		t.partialTrunc = true
	}
	t.partial = append(t.partial, b...)
}

// line takes one complete line of t at [start, end).
func (c *Collector) line(t *tracker, b []byte, start, end int64, now time.Time) {
	c.m.linesRead.Inc()
	b = bytes.TrimSuffix(b, []byte{'\r'})
	p, ok := t.joiner.line(b, start, end, t.partialTrunc, now)
	if n := t.joiner.truncCount; n > 0 {
		c.m.truncated.Add(float64(n))
		t.joiner.truncCount = 0
	}
	if ok {
		c.emit(t, p, now)
	}
}
