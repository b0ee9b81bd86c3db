package logsvc

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shuanghuo/shuanghuo/internal/jsontime"
)

// Config configures a Collector. The zero value of every field means "use the default",
// which each field's comment states. Config is JSON-tagged so an API can accept and return
// it; Logger and Registerer are wiring, not configuration.
type Config struct {
	// Sources name the files to collect. At least one.
	Sources []Source `json:"sources" validate:"required,min=1,dive"`
	// Labels are added to every record, such as center and host. Default: host is the
	// machine's host name. "file" is set by the collector and may not be given.
	Labels map[string]string `json:"labels,omitempty"`
	// CheckpointPath is the file holding how far each file was shipped. Required.
	CheckpointPath string `json:"checkpoint_path" validate:"required"`
	// PollInterval is how often the globs are expanded and the files checked for growth,
	// rotation and truncation. Default 250ms. From 10ms to 1m.
	PollInterval Duration `json:"poll_interval,omitempty" validate:"omitempty,duration=10ms:1m"`
	// FingerprintBytes is how many first bytes of a file identify it. Default 1024. From
	// 64 to 65536.
	FingerprintBytes int `json:"fingerprint_bytes,omitempty" validate:"omitempty,min=64,max=65536"`
	// MaxLineBytes is the longest record (a line, or lines joined by a multiline rule);
	// longer ones are cut and counted, never split. Default 65536. From 16 to 16777216.
	// A source may set its own.
	MaxLineBytes int `json:"max_line_bytes,omitempty" validate:"omitempty,min=16,max=16777216"`
	// BatchRecords is the most records shipped at once. Default 1000. From 1 to 100000.
	BatchRecords int `json:"batch_records,omitempty" validate:"omitempty,min=1,max=100000"`
	// BatchBytes is about the most bytes of lines shipped at once (a batch ends with the
	// record that reaches it). Default 1048576. From 1 to 67108864.
	BatchBytes int `json:"batch_bytes,omitempty" validate:"omitempty,min=1,max=67108864"`
	// CloseInactive is how long a file that was deleted, or renamed so that no glob
	// matches it, is kept open after it last grew; it is read to its end first. Default
	// 1m. From 10ms to 24h.
	CloseInactive Duration `json:"close_inactive,omitempty" validate:"omitempty,duration=10ms:24h"`
	// RetryMin and RetryMax bound the backoff between attempts to ship a batch that the
	// Sink refused. Defaults 100ms and 30s. From 1ms to 10m.
	RetryMin Duration `json:"retry_min,omitempty" validate:"omitempty,duration=1ms:10m"`
	RetryMax Duration `json:"retry_max,omitempty" validate:"omitempty,duration=1ms:10m"`

	// Logger receives operational messages (ship failures, unreadable files). Nil: discard.
	Logger *slog.Logger `json:"-"`
	// Registerer, when set, receives the collector's Prometheus metrics. Nil: no metrics.
	Registerer prometheus.Registerer `json:"-"`
}

// Source is a set of files collected alike.
type Source struct {
	// Paths are absolute glob patterns (filepath.Match syntax, no "**"), such as
	// "/var/log/bizc/*.log". A file matched by several sources belongs to the first. A
	// match that is a symbolic link is skipped: its target is not read.
	Paths []string `json:"paths" validate:"required,min=1"`
	// Labels are added to this source's records, such as app.
	Labels map[string]string `json:"labels,omitempty"`
	// Include, when set, keeps only records matching one of these regular expressions.
	Include []string `json:"include,omitempty"`
	// Exclude drops records matching any of these regular expressions (after Include).
	Exclude []string `json:"exclude,omitempty"`
	// Multiline, when set, joins continuation lines to the line they continue.
	Multiline *Multiline `json:"multiline,omitempty"`
	// MaxLineBytes overrides Config.MaxLineBytes for this source. From 16 to 16777216.
	MaxLineBytes int `json:"max_line_bytes,omitempty" validate:"omitempty,min=16,max=16777216"`
}

// Multiline joins a record's continuation lines (a Java stack trace's "\tat …" and
// "Caused by: …") to its first line.
type Multiline struct {
	// Start matches a line that begins a record, such as `^\d{4}-\d{2}-\d{2}` or `^\S`.
	// Any other line continues the record before it.
	Start string `json:"start" validate:"required"`
	// Continue, when set, matches lines that continue a record even though they match
	// Start, such as `^Caused by:` with Start `^\S`.
	Continue string `json:"continue,omitempty"`
	// Timeout is how long a record waits for another continuation line before it is
	// shipped. Default 1s. From 10ms to 1m.
	Timeout Duration `json:"timeout,omitempty" validate:"omitempty,duration=10ms:1m"`
}

// Duration is a time.Duration written in JSON as a Go duration string ("1.5s"); a bare
// number is refused. It is the one Duration of every shuanghuo package (internal/jsontime).
type Duration = jsontime.Duration

// Defaults.
const (
	defaultPollInterval     = 250 * time.Millisecond
	defaultFingerprintBytes = 1024
	defaultMaxLineBytes     = 64 << 10
	defaultBatchRecords     = 1000
	defaultBatchBytes       = 1 << 20
	defaultCloseInactive    = time.Minute
	defaultRetryMin         = 100 * time.Millisecond
	defaultRetryMax         = 30 * time.Second
	defaultMultilineTimeout = time.Second
)

// labelName is Loki's and Prometheus's rule for label names, so labels carry over to stores.
var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// Validate reports every problem in c as a *ValidationError, or nil.
func (c Config) Validate() error {
	v := &ValidationError{Cause: ErrInvalid}
	v.AddStruct(c)
	checkLabels(v, "labels", c.Labels)
	if c.RetryMin != 0 && c.RetryMax != 0 && c.RetryMin > c.RetryMax {
		v.Add("retry_min", "must not be above retry_max")
	}
	for i, s := range c.Sources {
		p := fmt.Sprintf("sources[%d]", i)
		for j, g := range s.Paths {
			if !filepath.IsAbs(g) {
				v.Add(fmt.Sprintf("%s.paths[%d]", p, j), "must be an absolute path")
			} else if _, err := filepath.Match(g, ""); err != nil {
				v.Add(fmt.Sprintf("%s.paths[%d]", p, j), "is not a valid glob pattern")
			}
		}
		checkLabels(v, p+".labels", s.Labels)
		for j, re := range s.Include {
			checkRegexp(v, fmt.Sprintf("%s.include[%d]", p, j), re)
		}
		for j, re := range s.Exclude {
			checkRegexp(v, fmt.Sprintf("%s.exclude[%d]", p, j), re)
		}
		if m := s.Multiline; m != nil {
			if m.Start != "" {
				checkRegexp(v, p+".multiline.start", m.Start)
			}
			if m.Continue != "" {
				checkRegexp(v, p+".multiline.continue", m.Continue)
			}
		}
	}
	return v.Err()
}

func checkLabels(v *ValidationError, path string, labels map[string]string) {
	for k := range labels {
		switch {
		case !labelName.MatchString(k):
			v.Add(path, fmt.Sprintf("name %q must be letters, digits and '_', not starting with a digit", k))
		case k == "file":
			v.Add(path, `"file" is set by the collector to the file's path`)
		}
	}
}

func checkRegexp(v *ValidationError, path, re string) {
	if _, err := regexp.Compile(re); err != nil {
		v.Add(path, "is not a valid regular expression: "+err.Error())
	}
}
