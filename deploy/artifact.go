package deploy

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Digest is an artifact's sha256, written "sha256:<64 hex digits>".
type Digest string

// ParseDigest reads "sha256:<hex>" or "<hex>" (64 hex digits, any case).
func ParseDigest(s string) (Digest, error) {
	h := strings.ToLower(strings.TrimPrefix(s, "sha256:"))
	if len(h) != 64 {
		return "", fmt.Errorf("%w: digest %q: want sha256:<64 hex digits>", ErrInvalid, s)
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", fmt.Errorf("%w: digest %q: want sha256:<64 hex digits>", ErrInvalid, s)
	}
	return Digest("sha256:" + h), nil
}

// Hex returns the digest's hex digits.
func (d Digest) Hex() string { return strings.TrimPrefix(string(d), "sha256:") }

// Short returns the first 12 hex digits, for directory names and logs.
func (d Digest) Short() string {
	h := d.Hex()
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// ArtifactStore keeps artifacts by their sha256 digest. Content is never
// changed once stored. Implementations are safe for concurrent use.
type ArtifactStore interface {
	// Put stores what r yields, up to limit bytes (ErrTooLarge beyond),
	// and returns its digest and size. When want is not empty, content with
	// another digest is refused with ErrChecksum and not stored. Storing
	// content already stored is not an error.
	Put(ctx context.Context, r io.Reader, want Digest, limit int64) (Digest, int64, error)
	// Open returns the content with the digest, or an error wrapping
	// ErrNotFound. The reader verifies the content as it is read and fails
	// with ErrChecksum at its end on a mismatch.
	Open(ctx context.Context, d Digest) (io.ReadCloser, int64, error)
	// Delete removes the content; deleting what is not stored does nothing.
	Delete(ctx context.Context, d Digest) error
}

// DirStore is a PieceStore in a directory: each artifact is the file
// sha256/<hex>, and its piece sums the file pieces/<hex>. Uploads go to a
// temporary file and are renamed into place only once verified and on disk
// (synced), so a failed upload leaves nothing behind and a stored one
// survives a crash. Where the file system allows it, uploads are written
// with direct I/O, in pieces that overlap receiving and hashing.
type DirStore struct {
	dir string
}

// NewDirStore returns a DirStore in dir, creating it. A DirStore owns its
// directory: the temporary files of uploads that a crash cut short, which
// can be as large as an artifact, are removed when it opens.
func NewDirStore(dir string) (*DirStore, error) {
	for _, sub := range []string{"sha256", "pieces", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("deploy: artifact store: %w", err)
		}
	}
	left, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil {
		return nil, fmt.Errorf("deploy: artifact store: %w", err)
	}
	for _, e := range left {
		if err := os.RemoveAll(filepath.Join(dir, "tmp", e.Name())); err != nil {
			return nil, fmt.Errorf("deploy: artifact store: remove what an earlier run left: %w", err)
		}
	}
	return &DirStore{dir: dir}, nil
}

func (s *DirStore) path(d Digest) string { return filepath.Join(s.dir, "sha256", d.Hex()) }

func (s *DirStore) piecesPath(d Digest) string { return filepath.Join(s.dir, "pieces", d.Hex()) }

// Put implements ArtifactStore. It computes the piece sums too, on the
// writers' goroutines, beside the whole digest: a second pass of sha256
// that costs no time where a core is free, and about a quarter of an
// upload's speed on two busy cores, for copies to other centers that no
// longer wait on one core's sha256.
func (s *DirStore) Put(ctx context.Context, r io.Reader, want Digest, limit int64) (Digest, int64, error) {
	return s.put(func(f *os.File) (Digest, int64, PieceSums, error) {
		h := sha256.New()
		n, sums, err := writeArtifact(ctx, f, r, h, nil, limit)
		if err != nil {
			return "", n, nil, err
		}
		got := Digest("sha256:" + hex.EncodeToString(h.Sum(nil)))
		if want != "" && got != want {
			return "", n, nil, fmt.Errorf("%w: upload has %s, want %s", ErrChecksum, got, want)
		}
		return got, n, sums, nil
	})
}

// PutPieces implements PieceStore. The pieces are checked as they arrive,
// by the writers, in parallel, and the first that differs ends the upload.
func (s *DirStore) PutPieces(ctx context.Context, r io.Reader, d Digest, size int64, sums PieceSums) (int64, error) {
	if _, err := ParseDigest(string(d)); err != nil {
		return 0, err
	}
	if err := sums.check(size); err != nil {
		return 0, err
	}
	_, n, err := s.put(func(f *os.File) (Digest, int64, PieceSums, error) {
		// No piece vouches for empty content: only its digest can.
		if size == 0 && d != emptyDigest {
			return "", 0, nil, fmt.Errorf("%w: an empty artifact has %s, want %s", ErrChecksum, emptyDigest, d)
		}
		n, _, err := writeArtifact(ctx, f, io.LimitReader(r, size+1), nil, sums, size)
		switch {
		case errors.Is(err, ErrTooLarge):
			return "", n, nil, fmt.Errorf("%w: upload has more than %d bytes", ErrChecksum, size)
		case err != nil:
			return "", n, nil, err
		case n != size:
			return "", n, nil, fmt.Errorf("%w: upload has %d bytes, want %d", ErrChecksum, n, size)
		}
		return d, n, sums, nil
	})
	return n, err
}

// put writes an artifact to a temporary file with write, which returns its
// digest, size and piece sums once it has checked them, moves the file into
// place with its sums, each synced, then the directories, and returns the
// digest and size.
func (s *DirStore) put(write func(f *os.File) (Digest, int64, PieceSums, error)) (Digest, int64, error) {
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "upload-*")
	if err != nil {
		return "", 0, fmt.Errorf("deploy: artifact store: %w", err)
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	d, n, sums, err := write(f)
	if err != nil {
		return "", n, err
	}
	if err := f.Sync(); err != nil {
		return "", n, fmt.Errorf("deploy: artifact store: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", n, fmt.Errorf("deploy: artifact store: %w", err)
	}
	// The sums go first: an artifact in place always has its sums.
	if err := s.putSums(d, sums); err != nil {
		return "", n, fmt.Errorf("deploy: artifact store: piece sums of %s: %w", d, err)
	}
	if err := os.Rename(f.Name(), s.path(d)); err != nil {
		return "", n, fmt.Errorf("deploy: artifact store: %w", err)
	}
	// The renames are durable once the directories are synced.
	for _, dir := range []string{filepath.Dir(s.piecesPath(d)), filepath.Dir(s.path(d))} {
		if err := syncDir(dir); err != nil {
			return "", n, fmt.Errorf("deploy: artifact store: %w", err)
		}
	}
	return d, n, nil
}

// putSums writes the piece sums of d, synced, in place.
func (s *DirStore) putSums(d Digest, sums PieceSums) error {
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "pieces-*")
	if err != nil {
		return err
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	if _, err := f.Write(sums); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), s.piecesPath(d))
}

// PieceSums implements PieceStore. An artifact stored before the store kept
// sums, or whose sums do not fit its size, has none.
func (s *DirStore) PieceSums(_ context.Context, d Digest) (PieceSums, error) {
	st, err := os.Stat(s.path(d))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("deploy: artifact %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("deploy: artifact %s: %w", d, err)
	}
	b, err := os.ReadFile(s.piecesPath(d))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("deploy: piece sums of artifact %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("deploy: piece sums of artifact %s: %w", d, err)
	}
	if err := PieceSums(b).check(st.Size()); err != nil {
		return nil, fmt.Errorf("deploy: piece sums of artifact %s do not fit it: %w", d, ErrNotFound)
	}
	return PieceSums(b), nil
}

// syncDir syncs the directory dir, which makes a rename into it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Open implements ArtifactStore.
func (s *DirStore) Open(_ context.Context, d Digest) (io.ReadCloser, int64, error) {
	f, err := os.Open(s.path(d))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, fmt.Errorf("deploy: artifact %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("deploy: artifact %s: %w", d, err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("deploy: artifact %s: %w", d, err)
	}
	return VerifyReader(f, d, st.Size()), st.Size(), nil
}

// Delete implements ArtifactStore, and deletes the piece sums too.
func (s *DirStore) Delete(_ context.Context, d Digest) error {
	for _, p := range []string{s.path(d), s.piecesPath(d)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("deploy: artifact %s: %w", d, err)
		}
	}
	return nil
}

// VerifyReader wraps r so that reading it to the end fails with an error
// wrapping ErrChecksum unless exactly size bytes (size < 0: any number) with
// digest d came through. Closing it closes r when r is an io.Closer.
func VerifyReader(r io.Reader, d Digest, size int64) io.ReadCloser {
	return &verifyReader{r: r, want: d, size: size, h: sha256.New()}
}

type verifyReader struct {
	r    io.Reader
	want Digest
	size int64
	n    int64
	h    hash.Hash
}

func (v *verifyReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.size >= 0 && v.n > v.size {
		return n, fmt.Errorf("%w: artifact %s is longer than its %d bytes", ErrChecksum, v.want, v.size)
	}
	if err == io.EOF {
		if v.size >= 0 && v.n != v.size {
			return n, fmt.Errorf("%w: artifact %s has %d bytes, want %d", ErrChecksum, v.want, v.n, v.size)
		}
		if got := Digest("sha256:" + hex.EncodeToString(v.h.Sum(nil))); got != v.want {
			return n, fmt.Errorf("%w: artifact has %s, want %s", ErrChecksum, got, v.want)
		}
	}
	return n, err
}

// Unverified returns what VerifyReader wrapped when r is one of its readers,
// and r otherwise. It is for a NodeDriver that hashes the bytes where they
// land and compares them with Artifact.Digest, which checks the store's
// content too, so that the content is not hashed twice on this host. Close
// r, not what Unverified returns.
func Unverified(r io.Reader) io.Reader {
	if v, ok := r.(*verifyReader); ok {
		return v.r
	}
	return r
}

func (v *verifyReader) Close() error {
	if c, ok := v.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// ExtractTarball unpacks the gzip-compressed tar r into dir, which must
// exist. It refuses (ErrUnsafePath) entries that would land outside dir
// (absolute paths, "..", links pointing out of the tree) and entries other
// than directories, regular files and symbolic links. On error, dir may hold
// part of the content: extract into a temporary directory and rename it.
func ExtractTarball(r io.Reader, dir string) error {
	if dir == "" {
		return fmt.Errorf("%w: ExtractTarball needs a directory", ErrInvalid)
	}
	return extractTarball(r, dir)
}

// CheckTarball reads the gzip-compressed tar r to its end and refuses it as
// ExtractTarball would, writing nothing.
func CheckTarball(r io.Reader) error { return extractTarball(r, "") }

// extractTarball unpacks r into dir, or only checks it when dir is "".
func extractTarball(r io.Reader, dir string) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("deploy: tarball: %w", err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("deploy: tarball: %w", err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if name == "" || name == "." {
			continue
		}
		if !safeRelPath(strings.TrimSuffix(name, "/")) {
			return fmt.Errorf("%w: tarball entry %q leaves the directory", ErrUnsafePath, h.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(path.Clean(name)))
		if dir == "" {
			switch h.Typeflag {
			case tar.TypeDir, tar.TypeReg:
				continue
			case tar.TypeSymlink:
				if strings.HasPrefix(h.Linkname, "/") || !safeRelPath(path.Join(path.Dir(path.Clean(name)), h.Linkname)) {
					return fmt.Errorf("%w: tarball link %q -> %q leaves the directory", ErrUnsafePath, h.Name, h.Linkname)
				}
				continue
			default:
				return fmt.Errorf("%w: tarball entry %q is of type %q; only directories, files and symbolic links are installed", ErrUnsafePath, h.Name, h.Typeflag)
			}
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return fmt.Errorf("deploy: tarball: %w", err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return fmt.Errorf("deploy: tarball: %w", err)
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, os.FileMode(h.Mode)&0o755|0o600)
			if err != nil {
				return fmt.Errorf("deploy: tarball: %w", err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("deploy: tarball: %w", err)
			}
		case tar.TypeSymlink:
			link := h.Linkname
			if strings.HasPrefix(link, "/") || !safeRelPath(path.Join(path.Dir(path.Clean(name)), link)) {
				return fmt.Errorf("%w: tarball link %q -> %q leaves the directory", ErrUnsafePath, h.Name, h.Linkname)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return fmt.Errorf("deploy: tarball: %w", err)
			}
			if err := os.Symlink(link, target); err != nil {
				return fmt.Errorf("deploy: tarball: %w", err)
			}
		default:
			return fmt.Errorf("%w: tarball entry %q is of type %q; only directories, files and symbolic links are installed", ErrUnsafePath, h.Name, h.Typeflag)
		}
	}
	// Read the gzip trailer, which holds the checksum of the content.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return fmt.Errorf("deploy: tarball: %w", err)
	}
	return nil
}

var _ ArtifactStore = (*DirStore)(nil)
