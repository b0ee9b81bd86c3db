// Package logsvc is the platform's log service. This part is its collector: it tails the
// log files of a host by configuration and ships their records, labelled, to a Sink (a
// store, or a center's API), so that an operator searches one place instead of ssh-ing
// into a dozen hosts and grepping.
//
// # Sources and records
//
// A Source names files by absolute glob patterns (a match that is a symbolic link is
// skipped, so a link in a log directory ships nothing from elsewhere), with labels (app, …) added to the
// Config's (center, host) and "file", the path the file had when it was opened. Each line
// is a Record; with a Multiline rule, a line matching Start begins a record and the lines
// after it that do not (a Java stack trace's "\tat …", or lines matching Continue, such as
// "Caused by: …") are joined to it with "\n". A record waits Multiline.Timeout for another
// continuation line before it is shipped. Include and Exclude regular expressions keep or
// drop whole records. A record longer than MaxLineBytes is cut at a character boundary,
// marked Truncated and counted; the rest of it is dropped, never shipped as another record.
// A line is complete at its newline: a last line without one is shipped when its file is
// closed.
//
// # File identity
//
// A file is known by the fingerprint of its first FingerprintBytes (1 KiB by default), not
// by its inode alone, which the file system reuses. A file shorter than that is known by
// its device, inode and path, with a nonce, until it grows long enough, and then by its
// fingerprint; the records read meanwhile have a Source starting "i-". Two files whose
// first FingerprintBytes are equal (a long fixed banner) are taken for one: give such logs
// a larger FingerprintBytes.
//
// An open file is followed by its descriptor, so rotation loses nothing that reaches it:
//   - rename (app.log to app.log.1): the old file is read to its end, the new one from 0;
//   - a file deleted or renamed out of every glob while open is read to its end and closed
//     once it has not grown for CloseInactive;
//   - a file replaced under the same name is a new file, read from 0;
//   - copytruncate: a file that got shorter than what was read, or whose first bytes
//     changed, was truncated. When a glob matches its copy (same fingerprint), the rest is
//     read from the copy; otherwise what was written between the last read and the copy is
//     lost (copytruncate's own race) and the file is read again from 0;
//   - a gzip file (by its first bytes, whatever its name) is skipped: a rotated file is
//     compressed after it was read;
//   - a copy of a file being read (the same fingerprint, or for a shorter file the same
//     first bytes) is not read again; an empty file is opened once it has a byte, when a
//     copy being written can be told from a new file.
//
// For a file shorter than the fingerprint the checkpoint keeps a hash of what was shipped,
// so one truncated and rewritten while no collector ran is read again from its start.
// A file deleted before the collector first saw it cannot be read; PollInterval bounds how
// long a new file goes unseen.
//
// # Delivery
//
// The collector reads until it has a batch (BatchRecords or BatchBytes), ships it and
// reads on only once Sink.Ship returned nil; a failing or slow sink is retried with backoff
// (RetryMin to RetryMax) while nothing more is read, so memory stays bounded and no line is
// dropped. Only then is how far each file was shipped written to the checkpoint file
// (CheckpointPath: written beside it, fsynced, renamed over it). A collector stopped or
// killed between a delivery and its checkpoint ships those records again after a restart,
// with the same Record.ID (file identity and offset): a store that drops known IDs keeps
// each record once. The one exception is a file that grew past the fingerprint while the
// collector was down after shipping it unacknowledged: its resent records carry the
// fingerprint, not the "i-" identity. The checkpoint keeps a file it no longer has open for
// seven days, so a rotated file renamed back into a glob is not read again.
//
// # Lifecycle
//
// New validates the Config and opens nothing. Start reads the checkpoint and starts one
// goroutine that polls, reads and ships; Close stops it, abandons a batch being shipped
// (it is shipped again by the next collector on the checkpoint) and closes the files.
//
// # Queries
//
// ParseQuery reads a query in LogQL's syntax for stream selectors and line filters, as
// operators know it from Grafana: {app="bizc", host=~"n.*"} |= "2201" != "debug". Label
// regular expressions are anchored, line regular expressions are RE2 ("(?i)" for case), and a
// selector must have a matcher that an empty value does not pass, so that no query selects
// every stream. Query.MatchLabels and MatchLine apply it; Query.String is its canonical form.
// A query is bounded: MaxQueryBytes, MaxRegexpBytes, MaxMatchers and MaxFilters.
//
// # Errors
//
// Errors wrap the sentinels in errors.go; test them with errors.Is. An invalid Config is a
// *ValidationError wrapping ErrInvalid, each problem under its JSON path; a query that does not
// parse is a *QueryError wrapping ErrQuery, with the byte it points at.
//
// # Observability
//
// With Config.Registerer set, the collector exports logsvc_collector_lines_read_total,
// logsvc_collector_records_shipped_total, logsvc_collector_truncated_lines_total,
// logsvc_collector_ship_errors_total and logsvc_collector_lag_bytes{file} (bytes of a file
// the sink has not acknowledged). Failed shipments are logged at Warn to Config.Logger.
//
// # Testing code that uses logsvc
//
// Write files in a temporary directory, give the collector a short PollInterval and a Sink
// that keeps what it gets, and wait for the lines (see the example and collector_test.go).
package logsvc
