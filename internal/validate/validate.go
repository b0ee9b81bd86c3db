// Package validate wraps go-playground/validator for shuanghuo's packages: fields are named
// by their JSON (or YAML) keys, and every failure becomes a sentence a person can act on,
// keyed by the field's path, ready for an API's {"error":{"fields":{...}}}.
package validate

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-playground/validator/v10"

	"github.com/shuanghuo/shuanghuo/internal/jsontime"
)

// New returns a validator that names fields by the given struct tag ("json" or "yaml"), with
// the library's rules and ours (see Register).
func New(tag string) *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	Register(v)
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name := strings.Split(f.Tag.Get(tag), ",")[0]
		if name == "-" {
			return ""
		}
		return name
	})
	return v
}

// Register adds our rules to v: "label", a display name without control characters or
// surrounding spaces; "listen_addr", a host:port to listen on (port 0: any free port); and
// "duration=MIN:MAX", a duration (jsontime.Duration, time.Duration) from MIN to MAX, both Go
// duration strings, such as `validate:"omitempty,duration=100ms:1h"` for a field whose zero
// means its default.
func Register(v *validator.Validate) {
	_ = v.RegisterValidation("label", label)
	_ = v.RegisterValidation("listen_addr", listenAddr)
	_ = v.RegisterValidation("duration", duration)
}

// jsonValidator is built once: it caches struct metadata, is safe for concurrent use and
// holds no configuration of its own.
var jsonValidator = sync.OnceValue(func() *validator.Validate { return New("json") })

// Struct checks s's struct tags, fields named by their JSON keys, and returns the failures
// keyed by path (nil when there is none); s not being a struct is reported under "".
func Struct(s any) map[string]string {
	fields, err := Fields(jsonValidator(), s)
	if err != nil {
		Add(&fields, "", err.Error())
	}
	return fields
}

// label accepts a display name a person typed (Chinese included): no control characters
// and no space at either end, so that names compare and print as they look.
func label(fl validator.FieldLevel) bool {
	s := fl.Field().String()
	if strings.TrimSpace(s) != s {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

// listenAddr accepts host:port where the host may be empty and the port 0 (any free port).
func listenAddr(fl validator.FieldLevel) bool {
	_, port, err := net.SplitHostPort(fl.Field().String())
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 0 && n <= 65535
}

// duration checks an integer field as a time.Duration against the rule's "MIN:MAX"; a rule
// that does not parse is a programming error and panics, as the library's own rules do.
func duration(fl validator.FieldLevel) bool {
	lo, hi := durationBounds(fl.Param())
	d := time.Duration(fl.Field().Int())
	return d >= lo && d <= hi
}

func durationBounds(param string) (lo, hi time.Duration) {
	a, b, ok := strings.Cut(param, ":")
	lo, err1 := time.ParseDuration(a)
	hi, err2 := time.ParseDuration(b)
	if !ok || err1 != nil || err2 != nil || lo > hi {
		panic(fmt.Sprintf("validate: duration rule %q: want MIN:MAX, such as 100ms:1h", param))
	}
	return lo, hi
}

// Fields runs v on s and returns each failure by field path ("center.role"), without the
// top-level struct's name; nil when s is valid. A non-validation error (s is not a struct)
// is returned as err.
func Fields(v *validator.Validate, s any) (map[string]string, error) {
	err := v.Struct(s)
	if err == nil {
		return nil, nil
	}
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) {
		return nil, fmt.Errorf("validate: %w", err)
	}
	out := make(map[string]string, len(verrs))
	for _, fe := range verrs {
		path := fe.Namespace()
		if i := strings.IndexByte(path, '.'); i >= 0 {
			path = path[i+1:]
		}
		out[path] = Message(fe)
	}
	return out, nil
}

// Message turns one validator failure into a sentence.
func Message(fe validator.FieldError) string {
	got := fmt.Sprintf("%v", fe.Value())
	sized := fe.Kind() == reflect.String || fe.Kind() == reflect.Slice || fe.Kind() == reflect.Map
	switch fe.Tag() {
	case "required":
		return "is required"
	case "oneof":
		return fmt.Sprintf("must be one of %s, got %q", strings.ReplaceAll(fe.Param(), " ", ", "), got)
	case "min", "gte":
		if sized {
			return fmt.Sprintf("must have at least %s characters or items", fe.Param())
		}
		return fmt.Sprintf("must be at least %s, got %s", fe.Param(), got)
	case "max", "lte":
		if sized {
			return fmt.Sprintf("must have at most %s characters or items", fe.Param())
		}
		return fmt.Sprintf("must be at most %s, got %s", fe.Param(), got)
	case "gt":
		return fmt.Sprintf("must be greater than %s, got %s", fe.Param(), got)
	case "hostname_port", "listen_addr":
		return fmt.Sprintf("must be host:port, got %q", got)
	case "hostname_rfc1123":
		return fmt.Sprintf("must be a DNS name (letters, digits, '-'), got %q", got)
	case "ip", "ipv4", "ipv6":
		return fmt.Sprintf("must be an IP address, got %q", got)
	case "cidr":
		return fmt.Sprintf("must be a CIDR prefix such as 10.0.0.0/8, got %q", got)
	case "url", "http_url":
		return fmt.Sprintf("must be a URL, got %q", got)
	case "duration":
		lo, hi, _ := strings.Cut(fe.Param(), ":")
		return fmt.Sprintf("must be from %s to %s, got %s", lo, hi, time.Duration(reflect.ValueOf(fe.Value()).Int()))
	case "label":
		return "must not start or end with spaces or hold control characters"
	case "printascii":
		return "must be printable ASCII"
	default:
		return fmt.Sprintf("failed the %q rule, got %q", fe.Tag(), got)
	}
}

// TypeMessage says what a JSON value of the wrong type should have been, for an API's field
// error: "must be a number, got string", or for a duration "must be a duration string such as
// \"5s\", got number 5".
func TypeMessage(e *json.UnmarshalTypeError) string {
	want := "an object"
	switch t := e.Type; {
	case jsontime.IsDuration(t):
		want = `a duration string such as "5s"`
	case t.Kind() == reflect.String:
		want = "a string"
	case t.Kind() == reflect.Bool:
		want = "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Float64:
		want = "a number"
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		want = "an array"
	}
	return fmt.Sprintf("must be %s, got %s", want, e.Value)
}

// Describe renders field errors as "prefix: path: message; path: message", paths in order,
// for a validation error's Error method.
func Describe(prefix string, fields map[string]string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for i, p := range slices.Sorted(maps.Keys(fields)) {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(p + ": " + fields[p])
	}
	return b.String()
}

// Add records msg for path in *fields, after any message already there.
func Add(fields *map[string]string, path, msg string) {
	if *fields == nil {
		*fields = make(map[string]string)
	}
	if prev, ok := (*fields)[path]; ok {
		msg = prev + "; " + msg
	}
	(*fields)[path] = msg
}
