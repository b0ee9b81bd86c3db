package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
)

// PieceSize is the length of the pieces an artifact's PieceSums cover:
// every piece but the last has exactly this many bytes.
const PieceSize = 2 << 20

// PieceSums are the sha256s of an artifact's consecutive PieceSize-byte
// pieces, concatenated (32 bytes each; an empty artifact has none).
//
// A single sha256 stream runs on one core, at about 1.1 GB/s even with the
// CPU's SHA instructions, which is slower than a copy between two centers.
// Pieces can be checked on every core at once. Sums computed with the digest
// from the same bytes, by a store that was given the whole artifact, tie the
// pieces to the digest: content whose pieces match is the content the
// digest names.
type PieceSums []byte

// ParsePieceSums reads sums written as hex (64 digits per piece, any case)
// and checks that they are the right number for an artifact of size bytes.
func ParsePieceSums(s string, size int64) (PieceSums, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: piece sums are not hex: %w", ErrInvalid, err)
	}
	p := PieceSums(b)
	if err := p.check(size); err != nil {
		return nil, err
	}
	return p, nil
}

// String returns the sums as lower-case hex, 64 digits per piece.
func (p PieceSums) String() string { return hex.EncodeToString(p) }

// Count returns the number of pieces.
func (p PieceSums) Count() int { return len(p) / sha256.Size }

// piece returns the sum of piece i, and false past the last piece.
func (p PieceSums) piece(i int64) ([]byte, bool) {
	if i < 0 || i >= int64(p.Count()) {
		return nil, false
	}
	return p[i*sha256.Size : (i+1)*sha256.Size], true
}

// check says whether p has one whole sum per piece of a size-byte artifact.
func (p PieceSums) check(size int64) error {
	want := pieceCount(size)
	if size < 0 || len(p)%sha256.Size != 0 || int64(p.Count()) != want {
		return fmt.Errorf("%w: %d bytes of piece sums for an artifact of %d bytes: want %d sums of %d bytes", ErrInvalid, len(p), size, want, sha256.Size)
	}
	return nil
}

func pieceCount(size int64) int64 { return (size + PieceSize - 1) / PieceSize }

// PieceStore is an ArtifactStore that also keeps each artifact's PieceSums,
// computed by Put from the bytes it hashes, and that can store an artifact
// checked by its pieces.
type PieceStore interface {
	ArtifactStore
	// PieceSums returns the sums of the artifact's pieces, or an error
	// wrapping ErrNotFound when the store has no sums for it.
	PieceSums(ctx context.Context, d Digest) (PieceSums, error)
	// PutPieces stores what r yields as the artifact d: exactly size bytes
	// whose pieces have the sums. Other content is refused with ErrChecksum
	// and not stored. The whole digest is not computed: the caller vouches
	// that the sums are d's, having them from a store that computed both
	// from the same bytes. Content of unknown origin goes through Put.
	PutPieces(ctx context.Context, r io.Reader, d Digest, size int64, sums PieceSums) (int64, error)
}

// emptyDigest is the sha256 of no bytes, which no piece sum vouches for.
var emptyDigest = func() Digest {
	s := sha256.Sum256(nil)
	return Digest("sha256:" + hex.EncodeToString(s[:]))
}()
