package deploy_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/shuanghuo/shuanghuo/deploy"
)

// randomBytes returns n pseudo-random bytes fixed by seed, so that failures
// reproduce.
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	var s [32]byte
	s[0] = byte(seed)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

func digestOf(b []byte) deploy.Digest {
	sum := sha256.Sum256(b)
	return deploy.Digest("sha256:" + hex.EncodeToString(sum[:]))
}

// names lists the files in dir/sub.
func names(t *testing.T, dir, sub string) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(dir, sub))
	if err != nil {
		t.Fatal(err)
	}
	var ns []string
	for _, e := range es {
		ns = append(ns, e.Name())
	}
	return ns
}

// assertEmpty fails unless the store in dir holds no blob and no temporary
// file.
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	if ns := names(t, dir, "tmp"); len(ns) > 0 {
		t.Errorf("tmp holds %v, want nothing", ns)
	}
	if ns := names(t, dir, "sha256"); len(ns) > 0 {
		t.Errorf("sha256 holds %v, want nothing", ns)
	}
}

// errReader yields n bytes of b, then fails with err.
type errReader struct {
	b   []byte
	n   int
	err error
}

func (r *errReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	k := copy(p, r.b[:min(r.n, len(r.b))])
	r.b, r.n = r.b[k:], r.n-k
	return k, nil
}

func TestDirStorePut(t *testing.T) {
	ctx := context.Background()
	// Sizes around the store's pieces (2 MiB) and direct I/O's blocks
	// (4 KiB), and empty.
	for _, size := range []int{0, 1, 4095, 4096, 4097, 1<<20 + 1, 2<<20 - 1, 2 << 20, 2<<20 + 4097, 17<<20 + 3} {
		dir := t.TempDir()
		s, err := deploy.NewDirStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		data := randomBytes(size, uint64(size))
		want := digestOf(data)
		// Short reads and data arriving with io.EOF; storing the same
		// content again is not an error.
		for _, r := range []io.Reader{
			bytes.NewReader(data),
			iotest.HalfReader(bytes.NewReader(data)),
			iotest.DataErrReader(bytes.NewReader(data)),
		} {
			d, n, err := s.Put(ctx, r, want, int64(size))
			if err != nil {
				t.Fatalf("size %d: Put: %v", size, err)
			}
			if d != want || n != int64(size) {
				t.Errorf("size %d: Put = %s, %d; want %s, %d", size, d, n, want, size)
			}
		}
		if ns := names(t, dir, "tmp"); len(ns) > 0 {
			t.Errorf("size %d: tmp holds %v after Put", size, ns)
		}
		got, err := os.ReadFile(filepath.Join(dir, "sha256", want.Hex()))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("size %d: stored blob differs from the content", size)
		}
	}
}

func TestDirStorePutRefused(t *testing.T) {
	data := randomBytes(5<<20+7, 2)
	readErr := errors.New("connection reset")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		r     io.Reader
		want  deploy.Digest
		limit int64
		is    error
	}{
		{"digest mismatch", context.Background(), bytes.NewReader(data), digestOf(data[1:]), 0, deploy.ErrChecksum},
		{"over the limit", context.Background(), bytes.NewReader(data), "", int64(len(data)) - 1, deploy.ErrTooLarge},
		{"far over the limit", context.Background(), bytes.NewReader(data), "", 1 << 20, deploy.ErrTooLarge},
		{"read error midway", context.Background(), &errReader{b: data, n: 3<<20 + 1, err: readErr}, "", 0, readErr},
		{"read error at once", context.Background(), &errReader{b: data, err: readErr}, "", 0, readErr},
		{"context canceled", canceled, bytes.NewReader(data), "", 0, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := deploy.NewDirStore(dir)
			d, _, err := s.Put(tc.ctx, tc.r, tc.want, tc.limit)
			if !errors.Is(err, tc.is) {
				t.Fatalf("Put = %s, %v; want an error wrapping %v", d, err, tc.is)
			}
			assertEmpty(t, dir)
		})
	}
}

func TestDirStorePutAtLimit(t *testing.T) {
	dir := t.TempDir()
	s, _ := deploy.NewDirStore(dir)
	data := randomBytes(2<<20, 3)
	if _, _, err := s.Put(context.Background(), bytes.NewReader(data), digestOf(data), int64(len(data))); err != nil {
		t.Fatalf("Put of exactly the limit: %v", err)
	}
}

func TestDirStorePutConcurrentSameContent(t *testing.T) {
	dir := t.TempDir()
	s, _ := deploy.NewDirStore(dir)
	data := randomBytes(3<<20+1, 4)
	want := digestOf(data)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			d, _, err := s.Put(context.Background(), bytes.NewReader(data), want, 0)
			if err == nil && d != want {
				err = errors.New("digest " + string(d))
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Put %d: %v", i, err)
		}
	}
	if ns := names(t, dir, "sha256"); len(ns) != 1 || ns[0] != want.Hex() {
		t.Errorf("sha256 holds %v, want [%s]", ns, want.Hex())
	}
	if ns := names(t, dir, "tmp"); len(ns) > 0 {
		t.Errorf("tmp holds %v, want nothing", ns)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "sha256", want.Hex()))
	if !bytes.Equal(got, data) {
		t.Error("stored blob differs from the content")
	}
}

// BenchmarkDirStorePut stores 256 MiB from memory, fsync included, as a
// center receiving an artifact does.
func BenchmarkDirStorePut(b *testing.B) {
	dir := b.TempDir()
	s, err := deploy.NewDirStore(dir)
	if err != nil {
		b.Fatal(err)
	}
	data := randomBytes(256<<20, 5)
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		d, _, err := s.Put(ctx, bytes.NewReader(data), "", 0)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Delete(ctx, d); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// Unverified reads what VerifyReader wraps, without its check, for a driver
// that checks at the destination; other readers are left as they are.
func TestUnverified(t *testing.T) {
	data := []byte("the store's bytes")
	wrong := digestOf([]byte("other bytes"))
	if _, err := io.ReadAll(deploy.VerifyReader(bytes.NewReader(data), wrong, int64(len(data)))); !errors.Is(err, deploy.ErrChecksum) {
		t.Fatalf("verified read of a mismatch: %v", err)
	}
	got, err := io.ReadAll(deploy.Unverified(deploy.VerifyReader(bytes.NewReader(data), wrong, int64(len(data)))))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("unverified read = %q, %v", got, err)
	}
	r := bytes.NewReader(data)
	if deploy.Unverified(r) != io.Reader(r) {
		t.Fatal("Unverified changed a reader that VerifyReader did not make")
	}
}
