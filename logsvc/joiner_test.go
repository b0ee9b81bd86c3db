package logsvc

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzJoiner feeds arbitrary text through a multiline joiner and checks that records cover
// the input exactly once, in order, each starting at a start line (or the input's first),
// none longer than the limit, and that an untruncated record is exactly its lines joined.
func FuzzJoiner(f *testing.F) {
	f.Add("2026-12-07 ERROR x\njava.lang.X: y\n\tat a.b(C.java:1)\nCaused by: z\n\t... 1 more\n2026-12-07 INFO ok\n", 64)
	f.Add("\tat orphan continuation\nstart\n\n\ncont\n", 16)
	f.Add("é\xff\x00\r\nCaused by: é\n", 17)
	f.Add(strings.Repeat("x", 100)+"\n\tat "+strings.Repeat("y", 100), 20)
	f.Fuzz(func(t *testing.T, in string, max int) {
		max = 16 + (max&0xffff)%4096
		j := joiner{max: max, start: regexp.MustCompile(`^\S`), cont: regexp.MustCompile(`^Caused by:`), timeout: time.Second}
		lines := strings.Split(in, "\n")
		var recs []piece
		var off int64
		now := time.Now()
		for _, l := range lines {
			end := off + int64(len(l)) + 1
			if p, ok := j.line([]byte(l), off, end, false, now); ok {
				recs = append(recs, p)
			}
			off = end
		}
		if p, ok := j.flush(); ok {
			recs = append(recs, p)
		}
		if len(recs) == 0 {
			t.Fatal("no record from any input")
		}
		next := int64(0)
		for i, r := range recs {
			if r.start != next {
				t.Fatalf("record %d starts at %d, want %d: a gap or an overlap", i, r.start, next)
			}
			next = r.end
			if len(r.text) > max {
				t.Fatalf("record %d has %d bytes, limit %d", i, len(r.text), max)
			}
			src := in[r.start:min(r.end-1, int64(len(in)))]
			if !r.truncated && r.text != src {
				t.Fatalf("record %d is %q, its lines are %q", i, r.text, src)
			}
			if r.truncated && (!strings.HasPrefix(src, r.text) || (utf8.ValidString(src) && !utf8.ValidString(r.text))) {
				t.Fatalf("record %d cut to %q is not a prefix of %q on a character boundary", i, r.text, src)
			}
			first, _, _ := strings.Cut(src, "\n")
			if i > 0 && !j.start.MatchString(first) || (i > 0 && j.cont.MatchString(first)) {
				t.Fatalf("record %d begins with a continuation line %q", i, first)
			}
		}
		if next != off {
			t.Fatalf("records end at %d, input at %d", next, off)
		}
	})
}

func TestCut(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{{"abc", 5, "abc"}, {"abcdef", 3, "abc"}, {"aéb", 2, "a"}, {"aéb", 3, "aé"}, {"\xff\xff\xff", 2, "\xff\xff"}} {
		if got := cut([]byte(c.in), c.max); !bytes.Equal(got, []byte(c.in[:len(c.want)])) || string(got) != c.want {
			t.Errorf("cut(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}
