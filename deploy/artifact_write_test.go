package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
)

// A piece that cannot be written fails the whole artifact, whichever writer
// had it.
func TestWriteArtifactWriteFails(t *testing.T) {
	name := filepath.Join(t.TempDir(), "upload")
	if err := os.WriteFile(name, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Read-only: buffered writes fail; direct ones, on a second handle of
	// its own, may not, so the tail after the last whole block is what fails.
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := bytes.Repeat([]byte{'a'}, 3*pieceSize+5)
	n, _, err := writeArtifact(context.Background(), f, bytes.NewReader(data), sha256.New(), nil, 0)
	if err == nil {
		t.Fatalf("writeArtifact to a read-only file = %d, nil; want an error", n)
	}
}

// Direct writes go where they should: each piece at its offset, the tail
// that is not a whole block through the page cache.
func TestWriteArtifactPieces(t *testing.T) {
	for _, size := range []int{directAlign - 1, pieceSize + 1, 3*pieceSize + directAlign + 17} {
		name := filepath.Join(t.TempDir(), "upload")
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*7 + i/pieceSize)
		}
		h := sha256.New()
		n, sums, err := writeArtifact(context.Background(), f, bytes.NewReader(data), h, nil, int64(size))
		if err != nil || n != int64(size) {
			t.Fatalf("size %d: writeArtifact = %d, %v", size, n, err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("size %d: the file differs from what was written (%d bytes)", size, len(got))
		}
		if sum := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), sum[:]) {
			t.Errorf("size %d: the hash is not of what was written", size)
		}
		var want []byte
		for off := 0; off < size; off += pieceSize {
			s := sha256.Sum256(data[off:min(off+pieceSize, size)])
			want = append(want, s[:]...)
		}
		if !bytes.Equal(sums, want) {
			t.Errorf("size %d: piece sums %x, want %x", size, sums, want)
		}
	}
}
