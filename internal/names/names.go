// Package names holds the naming rules that deploy and appsync share: the names of projects,
// apps and nodes end up in paths, instance IDs and feed entries, so both packages must accept
// exactly the same ones.
package names

import "strings"

// Valid reports whether s is a project, app or node name: lower-case letters, digits, '-' and
// '_', starting with a letter or digit, at most 63 characters.
func Valid(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case (r == '-' || r == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

// ValidVersion reports whether s may name a version: letters, digits, '.', '-', '_' and '+',
// not starting with '.', at most 64 characters.
func ValidVersion(s string) bool {
	if s == "" || len(s) > 64 || strings.HasPrefix(s, ".") {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '.' || r == '-' || r == '_' || r == '+':
		default:
			return false
		}
	}
	return true
}
