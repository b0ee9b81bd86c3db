// Package jsontime reads and writes durations in the packages' JSON configurations as Go
// duration strings ("1.5s", "200ms"), the form operators write, while still taking a plain
// number of nanoseconds. Each package keeps its own Duration type for its documentation and
// helpers, and delegates here.
package jsontime

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Marshal writes d as a duration string.
func Marshal(d time.Duration) ([]byte, error) { return json.Marshal(d.String()) }

// Unmarshal reads a duration string or a number of nanoseconds. pkg starts the error
// message ("lb", "dr") so that it names where the bad value was.
func Unmarshal(pkg string, b []byte) (time.Duration, error) {
	if len(b) > 0 && b[0] == '"' {
		s, err := strconv.Unquote(string(b))
		if err != nil {
			return 0, fmt.Errorf("%s: duration %s: %w", pkg, b, err)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%s: duration %q: %w", pkg, s, err)
		}
		return d, nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: duration %s: want a string such as \"2s\"", pkg, b)
	}
	return time.Duration(n), nil
}
