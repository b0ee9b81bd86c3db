package logsvc

import (
	"errors"
	"strings"
	"testing"
)

func TestParseQuery(t *testing.T) {
	labels := map[string]string{"app": "bizc", "host": "n2", "center": "a"}
	tests := []struct {
		query     string
		canonical string
		selects   bool
		lines     map[string]bool // line -> passes
	}{
		{`{app="bizc"}`, `{app="bizc"}`, true, map[string]bool{"anything": true}},
		{` { app = "bizc" , host =~ "n.*" } |= "2201" != "debug" `, `{app="bizc", host=~"n.*"} |= "2201" != "debug"`, true,
			map[string]bool{"POST /bizc2201 ok": true, "debug: /bizc2201": false, "POST /bizc2202": false}},
		{`{app="bizc", host!~"n1|n3"}`, `{app="bizc", host!~"n1|n3"}`, true, nil},
		{`{app="bizc", host=~"n"}`, `{app="bizc", host=~"n"}`, false, nil}, // anchored: "n2" is not "n"
		{`{app!="x", center="a"}`, `{app!="x", center="a"}`, true, nil},
		{`{app="bizc", zone=""}`, `{app="bizc", zone=""}`, true, nil}, // a label the stream lacks is ""
		{"{app=`bi\\zc`}", `{app="bi\\zc"}`, false, nil},
		{`{app="bizc"} |~ "(?i)ERROR" !~ "timeout\\d+"`, `{app="bizc"} |~ "(?i)ERROR" !~ "timeout\\d+"`, true,
			map[string]bool{"an error here": true, "Error: timeout42": false, "fine": false}},
		{`{app="门诊"} |= "结算"`, `{app="门诊"} |= "结算"`, false, nil},
	}
	for _, tt := range tests {
		q, err := ParseQuery(tt.query)
		if err != nil {
			t.Errorf("ParseQuery(%s): %v", tt.query, err)
			continue
		}
		if got := q.String(); got != tt.canonical {
			t.Errorf("ParseQuery(%s).String() = %s, want %s", tt.query, got, tt.canonical)
		}
		if got := q.MatchLabels(labels); got != tt.selects {
			t.Errorf("%s selects %v: %v, want %v", tt.query, labels, got, tt.selects)
		}
		for line, want := range tt.lines {
			if got := q.MatchLine(line); got != want {
				t.Errorf("%s on line %q: %v, want %v", tt.query, line, got, want)
			}
		}
	}
}

func TestParseQueryRefuses(t *testing.T) {
	tests := []struct {
		query string
		pos   int
		msg   string
	}{
		{``, 0, "starts with a stream selector"},
		{`app="bizc"`, 0, "starts with a stream selector"},
		{`{}`, 0, "needs a matcher that an empty value does not pass"},
		{`{app=~".*"}`, 0, "needs a matcher that an empty value does not pass"},
		{`{app!="x"}`, 0, "needs a matcher that an empty value does not pass"},
		{`{app="bizc"`, 11, `want "," or "}"`},
		{`{app="bizc" host="x"}`, 12, `want "," or "}"`},
		{`{1app="x"}`, 1, "want a label name"},
		{`{app=="x"}`, 5, "want a quoted string"},
		{`{app~"x"}`, 4, "want one of =, !=, =~, !~"},
		{`{app="x}`, 5, "not closed"},
		{`{app="\q"}`, 5, "bad string"},
		{`{app=~"("}`, 6, "missing closing )"},
		{`{app="x"} |= x`, 13, "want a quoted string"},
		{`{app="x"} | "x"`, 10, "want a line filter"},
		{`{app="x"} |~ "[a-"`, 13, "missing closing ]"},
		{`{app="x"} |~ "` + strings.Repeat("a", MaxRegexpBytes+1) + `"`, 13, "longer than"},
		{`{app="x"}` + strings.Repeat(` |= "a"`, MaxFilters+1), 9 + 7*MaxFilters + 1, "more than"},
		{`{app="x"` + strings.Repeat(`, b="c"`, MaxMatchers) + `}`, 8 + 7*(MaxMatchers-1) + 2, "more than"},
		{`{app="x"} |= "` + strings.Repeat("a", MaxQueryBytes) + `"`, MaxQueryBytes, "longer than"},
		{"{app=\"\xff\"}", 6, "not valid UTF-8"},
	}
	for _, tt := range tests {
		_, err := ParseQuery(tt.query)
		var qe *QueryError
		if !errors.As(err, &qe) || !errors.Is(err, ErrQuery) {
			t.Errorf("ParseQuery(%.40q) = %v, want a *QueryError", tt.query, err)
			continue
		}
		if qe.Pos != tt.pos || !strings.Contains(qe.Msg, tt.msg) {
			t.Errorf("ParseQuery(%.40q): %v; want %q at byte %d", tt.query, err, tt.msg, tt.pos)
		}
	}
}

// Whatever the text, ParseQuery returns a query or a *QueryError, never panics, and a query's
// canonical form reads back to the same query.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		`{app="bizc", host=~"n.*"} |= "2201" != "debug"`,
		`{app="bizc"} |~ "(?i)error" !~ "timeout"`,
		"{app=`raw\\d`}",
		`{app!="x", center="a"}`,
		`{app="\u4e2d\"\\"}`,
		`{`, `}`, `{app="x"} |`, `{a=~"(a|b)*c"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuery(s)
		if err != nil {
			var qe *QueryError
			if !errors.As(err, &qe) || qe.Pos < 0 || qe.Pos > len(s) {
				t.Fatalf("ParseQuery(%q): %v", s, err)
			}
			return
		}
		again, err := ParseQuery(q.String())
		if err != nil {
			t.Fatalf("the canonical form %s of %q does not parse: %v", q.String(), s, err)
		}
		if again.String() != q.String() {
			t.Fatalf("round trip of %q: %s then %s", s, q.String(), again.String())
		}
	})
}
