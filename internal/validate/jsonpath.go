package validate

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
)

// DecodeField names the value of data that err, returned by decoding data into v with
// encoding/json (unknown fields disallowed), is about: its JSON path in data, array indices
// and map keys included ("listeners[2].port", which encoding/json reports as
// "listeners.port", and "tls.nope" for an unknown field, which it reports without a place),
// and what is wrong with it. The path of data itself is "". ok is false when err is about no
// one value, such as a syntax error.
func DecodeField(data []byte, v any, err error) (path, msg string, ok bool) {
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te):
		return typeErrorPath(data, te), TypeMessage(te), true
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, uerr := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		if uerr != nil {
			return "", "", false
		}
		var t reflect.Type
		if v != nil {
			t = reflect.TypeOf(v)
		}
		s := scanner{data: data, unknown: name, at: -1}
		if s.value(t) {
			return s.found.String(), "unknown field", true
		}
		// Not found by the types (an Unmarshaler's own strict decoding): the first key so named.
		s = scanner{data: data, unknown: name, at: -1, anyKey: true}
		if s.value(nil) {
			return s.found.String(), "unknown field", true
		}
		return name, "unknown field", true
	}
	return "", "", false
}

// typeErrorPath is the path of the value te is about. encoding/json gives the offset just
// past a literal, or just past the opening bracket of an object or array; the value holding
// the byte before it is the one. An Unmarshaler's error has no offset, or one inside its own
// input: then it is the first value at the field's place that is what te quotes.
func typeErrorPath(data []byte, te *json.UnmarshalTypeError) string {
	if te.Offset > 0 {
		s := scanner{data: data, at: int(te.Offset) - 1}
		if s.value(nil) && s.found.fits(te.Field) {
			return s.found.String()
		}
	}
	s := scanner{data: data, at: -1, quotes: te.Value, field: te.Field}
	if s.value(nil) {
		return s.found.String()
	}
	return te.Field
}

// segment is one step of a path: an object's key or an array's index.
type segment struct {
	key   string
	index int // -1 for a key
}

type path []segment

// String writes the path as dotted keys and bracketed indices; a key that is not a plain
// name is quoted, as in `labels["a.b"]`.
func (p path) String() string {
	var b strings.Builder
	for _, s := range p {
		switch {
		case s.index >= 0:
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
		case plainKey(s.key):
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.key)
		default:
			b.WriteString("[" + strconv.Quote(s.key) + "]")
		}
	}
	return b.String()
}

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// fits reports whether encoding/json's field, which has the struct fields' keys and leaves
// out indices and map keys, names p: its keys are p's keys, some left out, the last kept.
func (p path) fits(field string) bool {
	var keys []string
	for _, s := range p {
		if s.index < 0 {
			keys = append(keys, s.key)
		}
	}
	if field == "" {
		return len(keys) == 0
	}
	want := strings.Split(field, ".")
	if len(keys) == 0 || keys[len(keys)-1] != want[len(want)-1] {
		return false
	}
	i := 0
	for _, k := range keys {
		if i < len(want) && k == want[i] {
			i++
		}
	}
	return i == len(want)
}

// maxDepth bounds nesting, as encoding/json does, so that no input exhausts the stack.
const maxDepth = 10000

// scanner walks a JSON value to find one value in it, by one of: the innermost value holding
// byte at (at >= 0); the first key named unknown that the Go type at its place has no field
// for (any key so named, with anyKey); or the first value in document order, innermost
// first, whose place fits field and whose text is what quotes says.
type scanner struct {
	data []byte
	i    int

	at      int
	unknown string
	anyKey  bool
	quotes  string
	field   string

	depth int
	cur   path
	found path
}

// value scans the value at s.i, of Go type t (nil: not known), and reports whether the
// sought value was found in it; malformed input finds nothing.
func (s *scanner) value(t reflect.Type) bool {
	s.space()
	if s.i >= len(s.data) {
		s.i = len(s.data) + 1 // malformed: stop every caller
		return false
	}
	t = decoded(t)
	start := s.i
	s.depth++
	defer func() { s.depth-- }()
	if s.depth > maxDepth {
		s.i = len(s.data) + 1
		return false
	}
	switch s.data[s.i] {
	case '{':
		if s.object(t) {
			return true
		}
	case '[':
		if s.array(t) {
			return true
		}
	case '"':
		s.str()
	default:
		for s.i < len(s.data) && strings.IndexByte("+-.0123456789eEtruefalsn", s.data[s.i]) >= 0 {
			s.i++
		}
		if s.i == start {
			s.i = len(s.data) + 1
		}
	}
	if s.i > len(s.data) {
		return false
	}
	if s.at >= start && s.at < s.i || s.quotes != "" && s.cur.fits(s.field) && quotes(s.data[start:s.i], s.quotes) {
		s.found = append(path(nil), s.cur...)
		return true
	}
	return false
}

func (s *scanner) object(t reflect.Type) bool {
	s.i++
	for first := true; ; first = false {
		s.space()
		if s.i < len(s.data) && s.data[s.i] == '}' && first {
			s.i++
			return false
		}
		if s.i >= len(s.data) || s.data[s.i] != '"' {
			s.i = len(s.data) + 1
			return false
		}
		keyStart := s.i
		s.str()
		if s.i > len(s.data) {
			return false
		}
		var key string
		if json.Unmarshal(s.data[keyStart:s.i], &key) != nil {
			s.i = len(s.data) + 1
			return false
		}
		ft, known := member(t, key)
		s.cur = append(s.cur, segment{key: key, index: -1})
		if s.unknown != "" && key == s.unknown && (!known || s.anyKey) {
			s.found = append(path(nil), s.cur...)
			return true
		}
		s.space()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			s.i = len(s.data) + 1
			return false
		}
		s.i++
		if s.value(ft) {
			return true
		}
		s.cur = s.cur[:len(s.cur)-1]
		if !s.next('}') {
			return false
		}
		if s.data[s.i-1] == '}' {
			return false
		}
	}
}

func (s *scanner) array(t reflect.Type) bool {
	s.i++
	var elem reflect.Type
	if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		elem = t.Elem()
	}
	for n := 0; ; n++ {
		s.space()
		if s.i < len(s.data) && s.data[s.i] == ']' && n == 0 {
			s.i++
			return false
		}
		s.cur = append(s.cur, segment{index: n})
		if s.value(elem) {
			return true
		}
		s.cur = s.cur[:len(s.cur)-1]
		if !s.next(']') {
			return false
		}
		if s.data[s.i-1] == ']' {
			return false
		}
	}
}

// next reads the comma or the closing bracket after a member or element.
func (s *scanner) next(end byte) bool {
	s.space()
	if s.i < len(s.data) && (s.data[s.i] == ',' || s.data[s.i] == end) {
		s.i++
		return true
	}
	s.i = len(s.data) + 1
	return false
}

func (s *scanner) str() {
	for s.i++; s.i < len(s.data); s.i++ {
		switch s.data[s.i] {
		case '\\':
			s.i++
		case '"':
			s.i++
			return
		}
	}
	s.i = len(s.data) + 1
}

func (s *scanner) space() {
	for s.i < len(s.data) && strings.IndexByte(" \t\r\n", s.data[s.i]) >= 0 {
		s.i++
	}
}

// quotes reports whether te.Value-style text (`number 5`, `string "x"`, `object`) is what
// encoding/json or an Unmarshaler says of raw.
func quotes(raw []byte, value string) bool {
	var kind, detail string
	switch raw[0] {
	case '{':
		kind = "object"
	case '[':
		kind = "array"
	case 't', 'f':
		kind = "bool"
	case 'n':
		kind = "null"
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return false
		}
		kind, detail = "string", strconv.Quote(s)
	default:
		kind, detail = "number", string(raw)
	}
	return value == kind || detail != "" && value == kind+" "+detail
}

var unmarshaler = reflect.TypeFor[json.Unmarshaler]()

// decoded is the type encoding/json decodes into for t: pointers followed; nil (not known)
// for what decodes itself or takes anything.
func decoded(t reflect.Type) reflect.Type {
	for t != nil {
		if t.Implements(unmarshaler) || reflect.PointerTo(t).Implements(unmarshaler) || t.Kind() == reflect.Interface {
			return nil
		}
		if t.Kind() != reflect.Pointer {
			return t
		}
		t = t.Elem()
	}
	return nil
}

// member is the type of key's value in an object of type t, and whether t has a place for
// it: a struct's field by its JSON name (exact, else case-insensitive, as encoding/json
// matches), or a map's element. A type not known takes anything.
func member(t reflect.Type, key string) (reflect.Type, bool) {
	if t == nil {
		return nil, true
	}
	switch t.Kind() {
	case reflect.Map:
		return t.Elem(), true
	case reflect.Struct:
	default:
		return nil, true
	}
	var folded reflect.Type
	var fold bool
	for _, f := range reflect.VisibleFields(t) {
		name, ok := jsonName(t, f)
		if !ok {
			continue
		}
		if name == key {
			return f.Type, true
		}
		if !fold && strings.EqualFold(name, key) {
			folded, fold = f.Type, true
		}
	}
	return folded, fold
}

// jsonName is the key encoding/json decodes f from; ok is false for a field it skips or
// flattens (an embedded struct without a name) and for one promoted from an embedded field
// that has a name.
func jsonName(t reflect.Type, f reflect.StructField) (string, bool) {
	for i := 1; i < len(f.Index); i++ {
		up := t.FieldByIndex(f.Index[:i])
		if name, _, _ := strings.Cut(up.Tag.Get("json"), ","); name != "" {
			return "", false
		}
	}
	tag := f.Tag.Get("json")
	if tag == "-" {
		return "", false
	}
	name, _, _ := strings.Cut(tag, ",")
	if f.Anonymous && name == "" {
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			return "", false
		}
	}
	if !f.IsExported() && !f.Anonymous {
		return "", false
	}
	if name == "" {
		name = f.Name
	}
	return name, true
}
