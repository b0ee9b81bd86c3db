package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"
)

// An artifact is written in pieces: the reader fills one while another
// goroutine hashes the one before and others are on their way to the disk,
// so that receiving, hashing and writing overlap. The writers sum the
// pieces they write, in parallel.
const (
	pieceSize    = PieceSize
	pieceWriters = 4
	// pieceBuffers are in use at once: one filling, one being hashed, one
	// per writer, and one so the reader need not wait for the slowest.
	pieceBuffers = pieceWriters + 2
	// directAlign is what direct I/O asks of offsets, lengths and memory:
	// the largest logical block size in common use.
	directAlign = 4096
)

// pieces holds the artifact writers' buffers (*[]byte), aligned for direct
// I/O.
var pieces = sync.Pool{New: func() any {
	b := make([]byte, pieceSize+directAlign)
	off := int(uintptr(unsafe.Pointer(&b[0])) % directAlign)
	if off != 0 {
		off = directAlign - off
	}
	b = b[off : off+pieceSize : off+pieceSize]
	return &b
}}

// writeArtifact copies r into f (a new, empty file) and, unless whole is
// nil, into whole, failing with ErrTooLarge beyond limit bytes (limit <= 0:
// no limit) and when ctx ends. It returns the sums of the pieces or, when
// want is not nil, checks each piece against want and fails with
// ErrChecksum at the first that differs.
//
// Where the file system allows it, the pieces go to the disk with direct
// I/O: the data is not copied into the page cache first, which costs about
// as much CPU here as hashing it, and it is on the disk by the time the last
// piece is written, so the Sync that makes the artifact durable has little
// left to do. A plain copy to a file (curl -o) pays the page-cache copy and
// leaves the write-back for later; this pays for durability instead.
func writeArtifact(ctx context.Context, f *os.File, r io.Reader, whole hash.Hash, want PieceSums, limit int64) (int64, PieceSums, error) {
	w := &pieceWriter{f: f, direct: openDirect(f.Name()), want: want}
	if w.direct != nil {
		defer w.direct.Close()
	}
	free := make(chan []byte, pieceBuffers)
	for range pieceBuffers {
		free <- *pieces.Get().(*[]byte)
	}
	// A piece goes back to free once hashed and written.
	done := func(p piece) {
		if p.refs.Add(-1) == 0 {
			free <- p.b[:pieceSize]
		}
	}
	jobs := make(chan piece, pieceBuffers)
	var toHash chan piece // nil: no whole hash
	var wg sync.WaitGroup
	for range pieceWriters {
		wg.Go(func() {
			for p := range jobs {
				w.write(p)
				done(p)
			}
		})
	}
	if whole != nil {
		toHash = make(chan piece, pieceBuffers)
		wg.Go(func() {
			for p := range toHash {
				whole.Write(p.b)
				done(p)
			}
		})
	}
	n, err := w.fill(ctx, r, limit, jobs, toHash, free)
	close(jobs)
	if toHash != nil {
		close(toHash)
	}
	wg.Wait()
	close(free)
	for b := range free {
		pieces.Put(&b)
	}
	if err == nil {
		err = w.failed()
	}
	if err != nil {
		return n, nil, err
	}
	if want != nil {
		return n, want, nil
	}
	return n, w.sums, nil
}

// piece is part of an artifact and where it goes in the file; refs counts
// the hasher of the whole and the writer until both are done with it.
type piece struct {
	b    []byte
	off  int64
	refs *atomic.Int32
}

// pieceWriter writes pieces to the file, directly where it can.
type pieceWriter struct {
	f      *os.File
	direct *os.File // nil: buffered only

	want PieceSums // nil: sums computes them

	mu        sync.Mutex
	err       error
	notDirect bool // a direct write was refused: the rest is buffered
	sums      PieceSums
}

// fill reads r into free pieces and hands each to the hasher of the whole
// (toHash nil: none), in order, and to the writers, until r ends, the limit
// is passed, ctx ends or a write fails.
func (w *pieceWriter) fill(ctx context.Context, r io.Reader, limit int64, jobs, toHash chan<- piece, free chan []byte) (int64, error) {
	var n int64
	for {
		b := <-free
		k := 0 // filled
		var rerr error
		for k < len(b) && rerr == nil {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			if err := w.failed(); err != nil {
				return n, err
			}
			var m int
			m, rerr = r.Read(b[k:])
			k += m
			if limit > 0 && n+int64(k) > limit {
				return n + int64(k), fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
			}
		}
		if k > 0 {
			p := piece{b: b[:k], off: n, refs: new(atomic.Int32)}
			if toHash != nil {
				p.refs.Store(2)
				toHash <- p
			} else {
				p.refs.Store(1)
			}
			jobs <- p
			n += int64(k)
		} else {
			free <- b
		}
		switch {
		case rerr == io.EOF:
			return n, nil
		case rerr != nil:
			return n, fmt.Errorf("deploy: artifact read: %w", rerr)
		}
	}
}

// write sums the piece and writes it.
func (w *pieceWriter) write(p piece) {
	if w.failed() != nil {
		return
	}
	if !w.sum(p) {
		return
	}
	aligned := len(p.b) &^ (directAlign - 1)
	rest := p.b
	if w.direct != nil && aligned > 0 && !w.buffered() {
		_, err := w.direct.WriteAt(p.b[:aligned], p.off)
		switch {
		case err == nil:
			rest = p.b[aligned:]
		case errors.Is(err, errDirectRefused):
			// Some file systems accept O_DIRECT at open and refuse the write.
			w.mu.Lock()
			w.notDirect = true
			w.mu.Unlock()
		default:
			w.fail(fmt.Errorf("deploy: artifact write: %w", err))
			return
		}
	}
	if len(rest) > 0 {
		if _, err := w.f.WriteAt(rest, p.off+int64(len(p.b)-len(rest))); err != nil {
			w.fail(fmt.Errorf("deploy: artifact write: %w", err))
		}
	}
}

// sum computes the piece's sum and keeps it or, against want, checks it;
// false: it differs, and the artifact has failed.
func (w *pieceWriter) sum(p piece) bool {
	s := sha256.Sum256(p.b)
	i := p.off / pieceSize
	if w.want != nil {
		if ws, ok := w.want.piece(i); !ok || !bytes.Equal(ws, s[:]) {
			w.fail(fmt.Errorf("%w: piece %d (bytes %d to %d) does not have its sum", ErrChecksum, i, p.off, p.off+int64(len(p.b))))
			return false
		}
		return true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if need := int(i+1) * sha256.Size; len(w.sums) < need {
		w.sums = append(w.sums, make([]byte, need-len(w.sums))...)
	}
	copy(w.sums[i*sha256.Size:], s[:])
	return true
}

func (w *pieceWriter) buffered() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.notDirect
}

func (w *pieceWriter) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *pieceWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
