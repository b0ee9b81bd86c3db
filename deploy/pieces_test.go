package deploy_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shuanghuo/shuanghuo/deploy"
)

// sumPieces computes the piece sums of b.
func sumPieces(b []byte) deploy.PieceSums {
	var sums []byte
	for off := 0; off < len(b); off += deploy.PieceSize {
		s := sha256.Sum256(b[off:min(off+deploy.PieceSize, len(b))])
		sums = append(sums, s[:]...)
	}
	return sums
}

func TestParsePieceSums(t *testing.T) {
	data := randomBytes(2*deploy.PieceSize+1, 9)
	want := sumPieces(data)
	got, err := deploy.ParsePieceSums(strings.ToUpper(want.String()), int64(len(data)))
	if err != nil || !bytes.Equal(got, want) || got.Count() != 3 {
		t.Fatalf("ParsePieceSums = %x (%d), %v; want %x", got, got.Count(), err, want)
	}
	for _, tc := range []struct {
		name string
		s    string
		size int64
	}{
		{"too few", want.String()[:128], int64(len(data))},
		{"too many", want.String(), 2 * deploy.PieceSize},
		{"not whole", want.String()[:190], int64(len(data))},
		{"not hex", strings.Repeat("g", 192), int64(len(data))},
		{"negative size", "", -1},
		{"none for content", "", 1},
	} {
		if _, err := deploy.ParsePieceSums(tc.s, tc.size); !errors.Is(err, deploy.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
	}
	if got, err := deploy.ParsePieceSums("", 0); err != nil || got.Count() != 0 {
		t.Errorf("empty artifact: %x, %v; want no sums", got, err)
	}
}

// Put keeps the piece sums of what it hashed; Delete removes them.
func TestDirStorePieceSums(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := deploy.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	var _ deploy.PieceStore = s
	for _, size := range []int{0, 1, deploy.PieceSize, 5*deploy.PieceSize + 4097} {
		data := randomBytes(size, uint64(size)+1)
		d, _, err := s.Put(ctx, bytes.NewReader(data), "", 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.PieceSums(ctx, d)
		if err != nil || !bytes.Equal(got, sumPieces(data)) {
			t.Errorf("size %d: PieceSums = %x, %v; want %x", size, got, err, sumPieces(data))
		}
		if err := s.Delete(ctx, d); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PieceSums(ctx, d); !errors.Is(err, deploy.ErrNotFound) {
			t.Errorf("size %d: after Delete: %v, want ErrNotFound", size, err)
		}
	}
	if ns := names(t, dir, "pieces"); len(ns) > 0 {
		t.Errorf("pieces holds %v after every artifact was deleted", ns)
	}

	// An artifact stored before the store kept sums, or with sums that do
	// not fit it, has none: its copies are checked by the whole digest.
	data := randomBytes(3*deploy.PieceSize, 4)
	d, _, err := s.Put(ctx, bytes.NewReader(data), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	sums := filepath.Join(dir, "pieces", d.Hex())
	if err := os.WriteFile(sums, sumPieces(data)[:64], 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := s.PieceSums(ctx, d); !errors.Is(err, deploy.ErrNotFound) {
		t.Errorf("truncated sums: %x, %v; want ErrNotFound", got, err)
	}
	if err := os.Remove(sums); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PieceSums(ctx, d); !errors.Is(err, deploy.ErrNotFound) {
		t.Errorf("no sums file: %v, want ErrNotFound", err)
	}
}

func TestDirStorePutPieces(t *testing.T) {
	ctx := context.Background()
	for _, size := range []int{0, 1, 4096, deploy.PieceSize, deploy.PieceSize + 1, 7*deploy.PieceSize + 17} {
		dir := t.TempDir()
		s, _ := deploy.NewDirStore(dir)
		data := randomBytes(size, uint64(size)+7)
		d, sums := digestOf(data), sumPieces(data)
		n, err := s.PutPieces(ctx, bytes.NewReader(data), d, int64(size), sums)
		if err != nil || n != int64(size) {
			t.Fatalf("size %d: PutPieces = %d, %v", size, n, err)
		}
		got, err := os.ReadFile(filepath.Join(dir, "sha256", d.Hex()))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("size %d: stored blob differs from the content (%v)", size, err)
		}
		// Stored with its sums, so that this center can be a source too.
		if got, err := s.PieceSums(ctx, d); err != nil || !bytes.Equal(got, sums) {
			t.Errorf("size %d: PieceSums = %x, %v", size, got, err)
		}
		if ns := names(t, dir, "tmp"); len(ns) > 0 {
			t.Errorf("size %d: tmp holds %v", size, ns)
		}
	}
}

func TestDirStorePutPiecesRefused(t *testing.T) {
	size := 5*deploy.PieceSize + 100
	data := randomBytes(size, 11)
	d, sums := digestOf(data), sumPieces(data)
	flip := func(at int) []byte {
		b := bytes.Clone(data)
		b[at] ^= 1
		return b
	}
	other := randomBytes(size, 12)
	for _, tc := range []struct {
		name string
		r    io.Reader
		d    deploy.Digest
		size int64
		sums deploy.PieceSums
		is   error
	}{
		{"first piece differs", bytes.NewReader(flip(0)), d, int64(size), sums, deploy.ErrChecksum},
		{"a middle piece differs", bytes.NewReader(flip(3*deploy.PieceSize + 5)), d, int64(size), sums, deploy.ErrChecksum},
		{"the last byte differs", bytes.NewReader(flip(size - 1)), d, int64(size), sums, deploy.ErrChecksum},
		{"other content", bytes.NewReader(other), d, int64(size), sums, deploy.ErrChecksum},
		{"short", bytes.NewReader(data[:size-1]), d, int64(size), sums, deploy.ErrChecksum},
		{"a whole piece short", bytes.NewReader(data[:4*deploy.PieceSize]), d, int64(size), sums, deploy.ErrChecksum},
		{"long", io.MultiReader(bytes.NewReader(data), strings.NewReader("x")), d, int64(size), sums, deploy.ErrChecksum},
		{"empty content, other digest", strings.NewReader(""), d, 0, nil, deploy.ErrChecksum},
		{"sums of another size", bytes.NewReader(data), d, int64(size), sums[:4*sha256.Size], deploy.ErrInvalid},
		{"bad digest", bytes.NewReader(data), "sha256:12", int64(size), sums, deploy.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := deploy.NewDirStore(dir)
			if _, err := s.PutPieces(context.Background(), tc.r, tc.d, tc.size, tc.sums); !errors.Is(err, tc.is) {
				t.Fatalf("PutPieces = %v; want an error wrapping %v", err, tc.is)
			}
			assertEmpty(t, dir)
			if ns := names(t, dir, "pieces"); len(ns) > 0 {
				t.Errorf("pieces holds %v", ns)
			}
		})
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// A piece that differs ends the upload: the rest is not read.
func TestDirStorePutPiecesStopsAtABadPiece(t *testing.T) {
	size := 200 * deploy.PieceSize
	data := make([]byte, size)
	sums := sumPieces(data)
	data[0] = 1
	s, _ := deploy.NewDirStore(t.TempDir())
	r := &countingReader{r: bytes.NewReader(data)}
	if _, err := s.PutPieces(context.Background(), r, digestOf(data), int64(size), sums); !errors.Is(err, deploy.ErrChecksum) {
		t.Fatalf("PutPieces = %v, want ErrChecksum", err)
	}
	if r.n > int64(size)/4 {
		t.Errorf("read %d of %d bytes after the first piece differed", r.n, size)
	}
}

// BenchmarkDirStorePutPieces is BenchmarkDirStorePut checked by piece sums,
// as a target center stores a synced version: compare the two.
func BenchmarkDirStorePutPieces(b *testing.B) {
	s, err := deploy.NewDirStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	data := randomBytes(256<<20, 5)
	d, sums := digestOf(data), sumPieces(data)
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.PutPieces(ctx, bytes.NewReader(data), d, int64(len(data)), sums); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Delete(ctx, d); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func TestAddVersionPieces(t *testing.T) {
	f := newFixture(t, nil)
	f.setup("v1")
	ctx := t.Context()
	data := randomBytes(deploy.PieceSize/2-3, 21) // the fixture allows 1 MiB
	d, sums := digestOf(data), sumPieces(data)
	v, err := f.m.AddVersionPieces(ctx, "yb", "settle", deploy.VersionConfig{Name: "v2", Digest: string(d)}, int64(len(data)), sums, bytes.NewReader(data))
	if err != nil || v.Digest != d || v.Size != int64(len(data)) {
		t.Fatalf("AddVersionPieces = %+v, %v", v, err)
	}
	if got, err := f.m.PieceSums(ctx, v); err != nil || !bytes.Equal(got, sums) {
		t.Errorf("PieceSums = %x, %v; want %x", got, err, sums)
	}
	rc, _, err := f.m.OpenArtifact(ctx, "yb", "settle", "v2")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc) // verified by the whole digest as it is read
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the stored artifact differs (%v)", err)
	}

	bad := bytes.Clone(data)
	bad[7] ^= 1
	for _, tc := range []struct {
		name string
		cfg  deploy.VersionConfig
		size int64
		sums deploy.PieceSums
		r    io.Reader
		is   error
	}{
		{"a piece differs", deploy.VersionConfig{Name: "v3", Digest: string(d)}, int64(len(bad)), sums, bytes.NewReader(bad), deploy.ErrChecksum},
		{"no sums: the whole digest", deploy.VersionConfig{Name: "v3", Digest: string(d)}, int64(len(bad)), nil, bytes.NewReader(bad), deploy.ErrChecksum},
		{"over the limit", deploy.VersionConfig{Name: "v3", Digest: string(d)}, 2 << 20, sumPieces(make([]byte, 2<<20)), bytes.NewReader(make([]byte, 2<<20)), deploy.ErrTooLarge},
		{"sums of another size", deploy.VersionConfig{Name: "v3", Digest: string(d)}, 1, sums[:0], bytes.NewReader(data), deploy.ErrInvalid},
		{"version exists", deploy.VersionConfig{Name: "v2", Digest: string(d)}, int64(len(data)), sums, bytes.NewReader(data), deploy.ErrExists},
	} {
		if _, err := f.m.AddVersionPieces(ctx, "yb", "settle", tc.cfg, tc.size, tc.sums, tc.r); !errors.Is(err, tc.is) {
			t.Errorf("%s: %v, want an error wrapping %v", tc.name, err, tc.is)
		}
	}
	var verr *deploy.ValidationError
	if _, err := f.m.AddVersionPieces(ctx, "yb", "settle", deploy.VersionConfig{Name: "v3"}, int64(len(data)), sums, bytes.NewReader(data)); !errors.As(err, &verr) || verr.Fields()["digest"] == "" {
		t.Errorf("no digest: %v, want a validation error of digest", err)
	}
	if _, err := f.m.Version(ctx, "yb", "settle", "v3"); !errors.Is(err, deploy.ErrNotFound) {
		t.Errorf("a refused upload left a version: %v", err)
	}
	// v1 by setup and the case without sums were checked by the digest.
	for _, c := range []struct {
		check, result string
		want          float64
	}{{"pieces", "stored", 1}, {"pieces", "refused", 2}, {"digest", "stored", 1}, {"digest", "refused", 1}} {
		if got := uploads(t, f.reg, c.check, c.result); got != c.want {
			t.Errorf("uploads{check=%s,result=%s} = %v, want %v", c.check, c.result, got, c.want)
		}
	}
}

// uploads reads deploy_artifact_uploads_total{check,result}.
func uploads(t *testing.T, reg *prometheus.Registry, check, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "deploy_artifact_uploads_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["check"] == check && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// Opening a store removes what uploads cut short by a crash left, and keeps
// what was stored.
func TestNewDirStoreRemovesLeftovers(t *testing.T) {
	dir := t.TempDir()
	s, err := deploy.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(deploy.PieceSize+1, 31)
	d, _, err := s.Put(context.Background(), bytes.NewReader(data), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"upload-123", "pieces-456"} {
		if err := os.WriteFile(filepath.Join(dir, "tmp", name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err = deploy.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ns := names(t, dir, "tmp"); len(ns) > 0 {
		t.Errorf("tmp holds %v after opening", ns)
	}
	if got, err := s.PieceSums(context.Background(), d); err != nil || !bytes.Equal(got, sumPieces(data)) {
		t.Errorf("the stored artifact's sums: %x, %v", got, err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "sha256", d.Hex())); err != nil || !bytes.Equal(got, data) {
		t.Errorf("the stored artifact changed (%v)", err)
	}
}
