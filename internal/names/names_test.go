package names

import "testing"

func TestNames(t *testing.T) {
	for s, want := range map[string]bool{"outpatient": true, "pj_1-a": true, "0app": true, "": false, "-x": false, "_x": false,
		"Upper": false, "a b": false, "a/b": false, "门诊": false, string(make([]byte, 64)): false} {
		if Valid(s) != want {
			t.Errorf("Valid(%q) = %v", s, !want)
		}
	}
	for s, want := range map[string]bool{"1.4.2": true, "v2+build.7": true, "RC_1-a": true, "": false, ".hidden": false,
		"../x": false, "a/b": false, "a b": false} {
		if ValidVersion(s) != want {
			t.Errorf("ValidVersion(%q) = %v", s, !want)
		}
	}
}
