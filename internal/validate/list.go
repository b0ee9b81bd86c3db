package validate

import (
	"sort"
	"strings"
)

// FieldError is one rejected field of a configuration.
type FieldError struct {
	// Field is the JSON path of the field, e.g. "listeners[0].port".
	Field string `json:"field"`
	// Message says what is wrong, e.g. "must be at most 65535".
	Message string `json:"message"`
}

// List lists every field error of a rejected configuration, for the packages (lb, gateway)
// whose ValidationError is a list: it wraps Cause, the package's sentinel, and a REST API can
// answer with Fields() as {"error":{"fields":{...}}}.
type List struct {
	Errors []FieldError
	// Cause is the sentinel the error wraps, such as lb.ErrInvalidConfig.
	Cause error
}

func (e *List) Error() string {
	var b strings.Builder
	if e.Cause != nil {
		b.WriteString(e.Cause.Error())
	}
	for i, f := range e.Errors {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(f.Field)
		b.WriteString(": ")
		b.WriteString(f.Message)
	}
	return b.String()
}

// Unwrap returns Cause.
func (e *List) Unwrap() error { return e.Cause }

// Fields maps each field path to its messages joined by "; ".
func (e *List) Fields() map[string]string {
	m := make(map[string]string, len(e.Errors))
	for _, f := range e.Errors {
		Add(&m, f.Field, f.Message)
	}
	return m
}

// One is a List of one field error, wrapping cause.
func One(cause error, field, msg string) *List {
	return &List{Errors: []FieldError{{Field: field, Message: msg}}, Cause: cause}
}

// AddStruct records the failures of s's validate tags (see Struct).
func (e *List) AddStruct(s any) {
	for path, msg := range Struct(s) {
		e.Add(path, msg)
	}
}

// Add records msg for field.
func (e *List) Add(field, msg string) {
	e.Errors = append(e.Errors, FieldError{Field: field, Message: msg})
}

// Err returns nil when nothing was added, so that a check can end with `return v.Err()`;
// otherwise the list, sorted by field.
func (e *List) Err() error {
	if len(e.Errors) == 0 {
		return nil
	}
	sort.SliceStable(e.Errors, func(i, j int) bool { return e.Errors[i].Field < e.Errors[j].Field })
	return e
}
