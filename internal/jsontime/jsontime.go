// Package jsontime holds the one Duration of the packages' JSON configurations. Each
// capability package names it as its own (`type Duration = jsontime.Duration`), so that its
// documentation reads lb.Duration or dr.Duration, while there is one type, one JSON form and
// one set of rules behind them all.
//
// A Duration is written and read as a Go duration string ("1.5s", "200ms"), the form operators
// write. A bare number is refused: read as nanoseconds it turned `"interval": 5` into a health
// check every 5ns. Bounds live in the packages' validation, as the rule
// `duration=MIN:MAX` of internal/validate.
package jsontime

import (
	"encoding/json"
	"reflect"
	"strconv"
	"time"
)

// Duration is a time.Duration that is a string in JSON. Zero means "the default" wherever a
// configuration documents one.
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string; null leaves d as it is. Anything else, a number
// included, is an *json.UnmarshalTypeError, which encoding/json completes with the field's
// path.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil // as encoding/json leaves other values on null
	}
	s, err := strconv.Unquote(string(b))
	if err != nil || len(b) == 0 || b[0] != '"' {
		return &json.UnmarshalTypeError{Value: kind(b), Type: reflect.TypeFor[Duration]()}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &json.UnmarshalTypeError{Value: "string " + strconv.Quote(s), Type: reflect.TypeFor[Duration]()}
	}
	*d = Duration(v)
	return nil
}

// kind names what a JSON value is, for the error.
func kind(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	case '"':
		return "string"
	}
	return "number " + string(b)
}

// String is the duration's Go form, such as "1m30s".
func (d Duration) String() string { return time.Duration(d).String() }

// Or returns d, or def when d is zero (not set).
func (d Duration) Or(def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return time.Duration(d)
}

// IsDuration reports whether t is Duration, so that an API can word a decoding error as a
// duration's rather than a number's.
func IsDuration(t reflect.Type) bool { return t == reflect.TypeFor[Duration]() }
