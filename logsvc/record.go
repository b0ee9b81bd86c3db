package logsvc

import (
	"context"
	"strconv"
	"time"
)

// Record is one log record: a line, or the lines a multiline rule joined, of one file.
type Record struct {
	// Time is when the collector read the record (log lines' own timestamps are not parsed).
	Time time.Time `json:"time"`
	// Labels name where the record comes from: the configuration's labels (center, host),
	// the source's (app, …) and "file", the path the file had when the collector opened it.
	// Records of one file share one map: a Sink must not modify it.
	Labels map[string]string `json:"labels"`
	// Line is the record's text without its final newline; joined lines are separated by
	// "\n". A record longer than the limit is cut at a character boundary.
	Line string `json:"line"`
	// Source is the file's identity: the fingerprint of its first bytes, or, while the file
	// is shorter than that, "i-" with its device, inode and a nonce (see the package doc).
	Source string `json:"source"`
	// Offset is the byte offset of the record's first line in its file.
	Offset int64 `json:"offset"`
	// Truncated says the record was longer than the limit and was cut.
	Truncated bool `json:"truncated,omitempty"`
}

// ID identifies the record for deduplication: Source and Offset. A record shipped again
// after a failure or a restart has the same ID, so a store that drops known IDs holds every
// record once.
func (r Record) ID() string { return r.Source + "@" + strconv.FormatInt(r.Offset, 10) }

// Sink receives the collector's batches. A batch counts as delivered only when Ship returns
// nil; on an error the collector waits and ships the same batch again, so Ship must be
// idempotent by Record.ID. Ship may keep the slice but must not modify the records. ctx ends
// when the collector closes.
type Sink interface {
	Ship(ctx context.Context, records []Record) error
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, records []Record) error

// Ship calls f.
func (f SinkFunc) Ship(ctx context.Context, records []Record) error { return f(ctx, records) }
