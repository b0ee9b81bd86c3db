package appsynctest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/shuanghuo/shuanghuo/appsync"
	"github.com/shuanghuo/shuanghuo/appsync/appsynctest"
)

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestPieceSums(t *testing.T) {
	content := bytes.Repeat([]byte("abcdefgh"), 1024) // 8192 bytes
	for name, tc := range map[string]struct {
		content []byte
		want    string
	}{
		"empty":      {nil, ""},
		"short":      {content[:100], sum(content[:100])},
		"exact":      {content, sum(content[:4096]) + sum(content[4096:])},
		"last short": {append(content, 'x'), sum(content[:4096]) + sum(content[4096:]) + sum([]byte("x"))},
	} {
		if got := appsynctest.PieceSums(tc.content, 4096); got != tc.want {
			t.Errorf("%s: %q, want %q", name, got, tc.want)
		}
	}
}

// The Sink checks an artifact by its piece sums when it has them, not by
// its digest, and by its digest otherwise; it keeps nothing that fails.
func TestSinkAddVersion(t *testing.T) {
	content := bytes.Repeat([]byte("the artifact "), 700) // 9100 bytes: 3 pieces
	other := bytes.Clone(content)
	other[5000] ^= 1 // in piece 1
	digest, pieces := "sha256:"+sum(content), appsynctest.PieceSums(content, 4096)
	for name, tc := range map[string]struct {
		art     appsync.Artifact
		content []byte
		want    string // the error, "" for none
	}{
		"digest":          {appsync.Artifact{Digest: digest, Size: 9100}, content, ""},
		"digest mismatch": {appsync.Artifact{Digest: digest, Size: 9100}, other, "with sha256:" + sum(other)},
		"digest short":    {appsync.Artifact{Digest: digest, Size: 9100}, content[:9099], "9099 bytes"},
		"pieces":          {appsync.Artifact{Digest: digest, Size: 9100, PieceSize: 4096, Pieces: pieces}, content, ""},
		"pieces only":     {appsync.Artifact{Digest: "sha256:" + strings.Repeat("0", 64), Size: 9100, PieceSize: 4096, Pieces: pieces}, content, ""},
		"piece mismatch":  {appsync.Artifact{Digest: digest, Size: 9100, PieceSize: 4096, Pieces: pieces}, other, "piece 1 "},
		"pieces short":    {appsync.Artifact{Digest: digest, Size: 9100, PieceSize: 4096, Pieces: pieces}, content[:9099], "9099 bytes"},
		"pieces missing":  {appsync.Artifact{Digest: digest, Size: 9100, PieceSize: 4096, Pieces: pieces[:128]}, content, "3 pieces"},
	} {
		s := appsynctest.NewSink()
		err := s.AddVersion(context.Background(), "hx", "outpatient", "1.0", "", tc.art, bytes.NewReader(tc.content))
		v, kept := s.Versions("hx", "outpatient")["1.0"]
		switch {
		case tc.want == "" && (err != nil || !kept || !bytes.Equal(v.Content, content) || v.Pieces != tc.art.Pieces || v.PieceSize != tc.art.PieceSize):
			t.Errorf("%s: %v, stored %v as %+v", name, err, kept, v)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || kept || len(s.Writes()) != 0):
			t.Errorf("%s: got %v (stored %v), want %q", name, err, kept, tc.want)
		}
	}
}
