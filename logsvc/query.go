package logsvc

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of a query, so that a request cannot make the server compile or run something huge.
const (
	// MaxQueryBytes bounds a query's text.
	MaxQueryBytes = 4096
	// MaxRegexpBytes bounds one regular expression of a query.
	MaxRegexpBytes = 1024
	// MaxMatchers bounds the label matchers of a selector, and MaxFilters its line filters.
	MaxMatchers = 32
	MaxFilters  = 32
)

// QueryError says where a query went wrong: Pos is the byte offset in the query's text.
type QueryError struct {
	Pos int
	Msg string
}

func (e *QueryError) Error() string { return fmt.Sprintf("%v at byte %d: %s", ErrQuery, e.Pos, e.Msg) }

// Unwrap returns ErrQuery.
func (e *QueryError) Unwrap() error { return ErrQuery }

// MatchOp compares a label with a value: equal, not equal, or (anchored) regular expression
// match and non-match, as in LogQL.
type MatchOp string

// Label match operators.
const (
	MatchEqual    MatchOp = "="
	MatchNotEqual MatchOp = "!="
	MatchRegexp   MatchOp = "=~"
	MatchNotRegex MatchOp = "!~"
)

// Matcher selects streams by one label. A label a stream lacks has the value "".
type Matcher struct {
	Label string
	Op    MatchOp
	Value string
	re    *regexp.Regexp
}

// Matches reports whether value (the stream's value of the label, "" if it has none) passes.
func (m Matcher) Matches(value string) bool {
	switch m.Op {
	case MatchEqual:
		return value == m.Value
	case MatchNotEqual:
		return value != m.Value
	case MatchRegexp:
		return m.re.MatchString(value)
	default:
		return !m.re.MatchString(value)
	}
}

// FilterOp keeps or drops a line: contains, does not contain, matches, does not match.
type FilterOp string

// Line filter operators.
const (
	FilterContains    FilterOp = "|="
	FilterNotContains FilterOp = "!="
	FilterRegexp      FilterOp = "|~"
	FilterNotRegexp   FilterOp = "!~"
)

// LineFilter keeps the lines that pass it. Regular expressions are RE2 (linear time); "(?i)"
// makes one case-insensitive, as in LogQL.
type LineFilter struct {
	Op    FilterOp
	Value string
	re    *regexp.Regexp
}

// Matches reports whether line passes the filter.
func (f LineFilter) Matches(line string) bool {
	switch f.Op {
	case FilterContains:
		return strings.Contains(line, f.Value)
	case FilterNotContains:
		return !strings.Contains(line, f.Value)
	case FilterRegexp:
		return f.re.MatchString(line)
	default:
		return !f.re.MatchString(line)
	}
}

// Query is a LogQL log query without its metric part: a stream selector and line filters,
// such as {app="bizc", host=~"n.*"} |= "2201" != "debug".
type Query struct {
	Matchers []Matcher
	Filters  []LineFilter
}

// MatchLabels reports whether a stream with these labels is selected.
func (q Query) MatchLabels(labels map[string]string) bool {
	for _, m := range q.Matchers {
		if !m.Matches(labels[m.Label]) {
			return false
		}
	}
	return true
}

// MatchLine reports whether a line of a selected stream passes every filter.
func (q Query) MatchLine(line string) bool {
	for _, f := range q.Filters {
		if !f.Matches(line) {
			return false
		}
	}
	return true
}

// String writes q in its canonical form, which ParseQuery reads back to the same query.
func (q Query) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range q.Matchers {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(m.Label)
		b.WriteString(string(m.Op))
		b.WriteString(strconv.Quote(m.Value))
	}
	b.WriteByte('}')
	for _, f := range q.Filters {
		b.WriteByte(' ')
		b.WriteString(string(f.Op))
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(f.Value))
	}
	return b.String()
}

// ParseQuery reads a query in LogQL's syntax for stream selectors and line filters:
//
//	{label="value", label!="value", label=~"regexp", label!~"regexp"} |= "text" != "text" |~ "regexp" !~ "regexp"
//
// Values are double-quoted with Go's (and LogQL's) escapes, or back-quoted raw. Label regular
// expressions are anchored at both ends, as in LogQL. A selector needs at least one matcher
// that an empty value does not pass, so that no query selects every stream of the store.
// Errors are *QueryError.
func ParseQuery(s string) (Query, error) {
	if len(s) > MaxQueryBytes {
		return Query{}, &QueryError{Pos: MaxQueryBytes, Msg: fmt.Sprintf("longer than %d bytes", MaxQueryBytes)}
	}
	if !utf8.ValidString(s) {
		return Query{}, &QueryError{Pos: invalidUTF8(s), Msg: "not valid UTF-8"}
	}
	p := &queryParser{s: s}
	q, err := p.query()
	if err != nil {
		return Query{}, err
	}
	return q, nil
}

func invalidUTF8(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			return i
		}
	}
	return 0
}

type queryParser struct {
	s   string
	pos int
}

func (p *queryParser) fail(pos int, format string, args ...any) error {
	return &QueryError{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *queryParser) space() {
	for p.pos < len(p.s) {
		r, n := utf8.DecodeRuneInString(p.s[p.pos:])
		if !unicode.IsSpace(r) {
			return
		}
		p.pos += n
	}
}

// take consumes tok if the input continues with it.
func (p *queryParser) take(tok string) bool {
	if strings.HasPrefix(p.s[p.pos:], tok) {
		p.pos += len(tok)
		return true
	}
	return false
}

func (p *queryParser) query() (Query, error) {
	var q Query
	p.space()
	start := p.pos
	if !p.take("{") {
		return q, p.fail(p.pos, `a query starts with a stream selector such as {app="bizc"}`)
	}
	p.space()
	for !p.take("}") {
		if len(q.Matchers) > 0 {
			if !p.take(",") {
				return q, p.fail(p.pos, `want "," or "}" after a matcher`)
			}
			p.space()
		}
		if len(q.Matchers) == MaxMatchers {
			return q, p.fail(p.pos, "more than %d matchers", MaxMatchers)
		}
		m, err := p.matcher()
		if err != nil {
			return q, err
		}
		q.Matchers = append(q.Matchers, m)
		p.space()
	}
	if !slices.ContainsFunc(q.Matchers, func(m Matcher) bool { return !m.Matches("") }) {
		return q, p.fail(start, "the selector needs a matcher that an empty value does not pass, such as app=\"bizc\"")
	}
	for {
		p.space()
		if p.pos == len(p.s) {
			return q, nil
		}
		if len(q.Filters) == MaxFilters {
			return q, p.fail(p.pos, "more than %d line filters", MaxFilters)
		}
		f, err := p.filter()
		if err != nil {
			return q, err
		}
		q.Filters = append(q.Filters, f)
	}
}

func (p *queryParser) matcher() (Matcher, error) {
	start := p.pos
	for p.pos < len(p.s) && isLabelByte(p.s[p.pos], p.pos == start) {
		p.pos++
	}
	m := Matcher{Label: p.s[start:p.pos]}
	if m.Label == "" {
		return m, p.fail(start, "want a label name (letters, digits and '_', not starting with a digit)")
	}
	p.space()
	op, ok := p.oneOf(string(MatchRegexp), string(MatchNotRegex), string(MatchNotEqual), string(MatchEqual))
	if !ok {
		return m, p.fail(p.pos, `want one of =, !=, =~, !~ after label %s`, m.Label)
	}
	m.Op = MatchOp(op)
	var err error
	// Label regular expressions match the whole value, as in LogQL.
	m.Value, m.re, err = p.operand(m.Op == MatchRegexp || m.Op == MatchNotRegex, "^(?:%s)$")
	return m, err
}

func isLabelByte(c byte, first bool) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || !first && '0' <= c && c <= '9'
}

func (p *queryParser) filter() (LineFilter, error) {
	var f LineFilter
	op, ok := p.oneOf(string(FilterContains), string(FilterNotContains), string(FilterRegexp), string(FilterNotRegexp))
	if !ok {
		return f, p.fail(p.pos, `want a line filter: |= "text", != "text", |~ "regexp" or !~ "regexp"`)
	}
	f.Op = FilterOp(op)
	var err error
	f.Value, f.re, err = p.operand(f.Op == FilterRegexp || f.Op == FilterNotRegexp, "%s")
	return f, err
}

// oneOf consumes the first of ops the input continues with; longer ops must come before
// their prefixes.
func (p *queryParser) oneOf(ops ...string) (string, bool) {
	for _, op := range ops {
		if p.take(op) {
			return op, true
		}
	}
	return "", false
}

// operand reads an operator's quoted value and, for a regular expression, compiles it as
// form (a format with one %s for the value) says.
func (p *queryParser) operand(isRegexp bool, form string) (string, *regexp.Regexp, error) {
	p.space()
	at := p.pos
	v, err := p.str()
	if err != nil || !isRegexp {
		return v, nil, err
	}
	if len(v) > MaxRegexpBytes {
		return v, nil, p.fail(at, "a regular expression longer than %d bytes", MaxRegexpBytes)
	}
	re, err := regexp.Compile(fmt.Sprintf(form, v))
	if err != nil {
		return v, nil, p.fail(at, "%v", err)
	}
	return v, re, nil
}

// str reads a double-quoted string with Go's escapes, or a back-quoted raw one.
func (p *queryParser) str() (string, error) {
	start := p.pos
	if p.pos == len(p.s) || (p.s[p.pos] != '"' && p.s[p.pos] != '`') {
		return "", p.fail(start, "want a quoted string")
	}
	quote := p.s[p.pos]
	i := p.pos + 1
	for i < len(p.s) && p.s[i] != quote {
		if quote == '"' && p.s[i] == '\\' {
			i++
		}
		i++
	}
	if i >= len(p.s) {
		return "", p.fail(start, "the string is not closed")
	}
	v, err := strconv.Unquote(p.s[start : i+1])
	if err != nil {
		return "", p.fail(start, "bad string: %v", err)
	}
	p.pos = i + 1
	return v, nil
}
