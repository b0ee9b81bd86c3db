package cache

import (
	"regexp"
	"strings"
)

var uuidRE = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)

// FoldKey turns a key into its pattern: UUIDs, hex ids (8 or more hex digits
// with a digit among them), long tokens mixing letters and digits (16 or
// more) and runs of digits become "*", so that "user:1001:cart" and
// "user:1002:cart" are both "user:*:cart".
func FoldKey(key string) string {
	key = uuidRE.ReplaceAllString(key, "*")
	var b strings.Builder
	for i := 0; i < len(key); {
		j := i
		for j < len(key) && isAlnum(key[j]) {
			j++
		}
		if j == i {
			b.WriteByte(key[i])
			i++
			continue
		}
		b.WriteString(foldToken(key[i:j]))
		i = j
	}
	// "*_*" stays: it says the key had two ids.
	s := b.String()
	for strings.Contains(s, "**") {
		s = strings.ReplaceAll(s, "**", "*")
	}
	return s
}

// foldToken folds one run of letters and digits.
func foldToken(t string) string {
	digits, hex := 0, true
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
		case (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'):
		default:
			hex = false
		}
	}
	if digits == 0 {
		return t
	}
	if (hex && len(t) >= 8) || len(t) >= 16 {
		return "*"
	}
	var b strings.Builder
	for i := 0; i < len(t); i++ {
		if t[i] >= '0' && t[i] <= '9' {
			if i == 0 || t[i-1] < '0' || t[i-1] > '9' {
				b.WriteByte('*')
			}
			continue
		}
		b.WriteByte(t[i])
	}
	return b.String()
}

func isAlnum(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// Prefix returns the first depth parts of key split at sep, folded, with sep
// after them when the key has more parts: Prefix("user:1:cart", ":", 1) is
// "user:". A key without sep is its own prefix, folded.
func Prefix(key, sep string, depth int) string {
	parts := strings.SplitN(key, sep, depth+1)
	if len(parts) <= depth {
		return FoldKey(key)
	}
	return FoldKey(strings.Join(parts[:depth], sep)) + sep
}
