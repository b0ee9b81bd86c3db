package logsvc

import (
	"regexp"
	"time"
	"unicode/utf8"
)

// piece is a finished record's text and where it lies in its file.
type piece struct {
	text       string
	start, end int64 // [start, end) in the file, the final newline included
	truncated  bool
}

// joiner turns one file's lines into records: one per line, or, with a multiline rule, a
// start line and its continuation lines. Records never exceed max bytes; a longer one is
// cut and its later lines dropped, so it is never split in two.
type joiner struct {
	max         int
	start, cont *regexp.Regexp // start nil: one record per line
	timeout     time.Duration

	open       bool // a multiline record is pending
	buf        []byte
	pstart     int64
	pend       int64
	ptrunc     bool
	at         time.Time // when the pending record last got a line
	truncCount int       // records cut since the caller last reset it
}

// line takes one complete line (without its newline) lying at [start, end) in the file;
// truncated says the reader already cut it. It returns the record this line finished, if
// any. b is only read during the call.
func (j *joiner) line(b []byte, start, end int64, truncated bool, now time.Time) (piece, bool) {
	if len(b) > j.max {
		b = cut(b, j.max)
		truncated = true
	}
	if truncated {
		j.truncCount++
	}
	if j.start == nil {
		return piece{text: string(b), start: start, end: end, truncated: truncated}, true
	}
	if j.open && (!j.start.Match(b) || (j.cont != nil && j.cont.Match(b))) {
		j.pend, j.at = end, now
		if j.ptrunc {
			return piece{}, false // already full: the rest of the record is dropped
		}
		if len(j.buf)+1+len(b) > j.max {
			j.buf = cut(append(append(j.buf, '\n'), b...), j.max)
			j.ptrunc = true
			if !truncated {
				j.truncCount++
			}
			return piece{}, false
		}
		j.buf = append(append(j.buf, '\n'), b...)
		j.ptrunc = j.ptrunc || truncated
		return piece{}, false
	}
	p, ok := j.flush()
	j.open = true
	j.buf = append(j.buf[:0], b...)
	j.pstart, j.pend, j.ptrunc, j.at = start, end, truncated, now
	return p, ok
}

// flush returns the pending record, if any.
func (j *joiner) flush() (piece, bool) {
	if !j.open {
		return piece{}, false
	}
	j.open = false
	return piece{text: string(j.buf), start: j.pstart, end: j.pend, truncated: j.ptrunc}, true
}

// due reports whether the pending record has waited its timeout for another line.
func (j *joiner) due(now time.Time) bool { return j.open && now.Sub(j.at) >= j.timeout }

// safe returns the offset before which every byte belongs to a finished record: the
// pending record's start, or next when none is pending.
func (j *joiner) safe(next int64) int64 {
	if j.open {
		return j.pstart
	}
	return next
}

// cut shortens b to at most max bytes without splitting a UTF-8 character.
func cut(b []byte, max int) []byte {
	if len(b) <= max {
		return b
	}
	i := max
	for i > 0 && !utf8.RuneStart(b[i]) {
		i--
	}
	return b[:i]
}
