package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The README's links to files resolve in a checkout of the repository.
func TestReadmeLinksResolve(t *testing.T) {
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	for _, m := range regexp.MustCompile(`\]\(([^)\s]+)\)`).FindAllStringSubmatch(string(readme), -1) {
		target := m[1]
		if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
			continue
		}
		target, _, _ = strings.Cut(target, "#")
		_, err := os.Stat(filepath.Join(root, filepath.FromSlash(target)))
		assert.NoError(t, err, "README.md links to %s", m[1])
		if rel, err := filepath.Rel(root, filepath.Join(root, target)); err == nil {
			assert.False(t, strings.HasPrefix(rel, ".."), "README.md links to %s, outside the repository", m[1])
		}
	}
}
