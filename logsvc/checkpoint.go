package logsvc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// entry is how far one file was shipped.
type entry struct {
	// ID is the file's identity, Record.Source.
	ID string `json:"id"`
	// Fingerprint says ID is a fingerprint; otherwise the file was shorter than the
	// fingerprint and is found again by Path, Dev and Ino.
	Fingerprint bool   `json:"fingerprint,omitempty"`
	Path        string `json:"path"`
	Dev         uint64 `json:"dev"`
	Ino         uint64 `json:"ino"`
	// Offset: every byte before it was shipped, or dropped by a filter.
	Offset int64 `json:"offset"`
	// Head, for a file shorter than the fingerprint, hashes its bytes before Offset: a
	// file rewritten while no collector ran is told from the one that was shipped.
	Head string `json:"head,omitempty"`
	// Seen is when the collector last had the file open.
	Seen time.Time `json:"seen"`
}

type checkpointFile struct {
	Version int      `json:"version"`
	Files   []*entry `json:"files"`
}

// forgetAfter is how long the entry of a file the collector no longer has open is kept: a
// file renamed out of every glob may come back (by a rename, or a glob changed back) within
// that time and is then not read again.
const forgetAfter = 7 * 24 * time.Hour

func loadCheckpoint(path string) (map[string]*entry, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]*entry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read: %w", ErrCheckpoint, err)
	}
	var cf checkpointFile
	if err := json.Unmarshal(b, &cf); err != nil {
		return nil, fmt.Errorf("%w: %s is not a checkpoint file: %w", ErrCheckpoint, path, err)
	}
	if cf.Version != 1 {
		return nil, fmt.Errorf("%w: %s has version %d, this collector reads version 1", ErrCheckpoint, path, cf.Version)
	}
	m := make(map[string]*entry, len(cf.Files))
	for _, e := range cf.Files {
		if e != nil && e.ID != "" {
			m[e.ID] = e
		}
	}
	return m, nil
}

// writeCheckpoint replaces the file atomically: write a temporary file beside it, fsync it,
// rename it over the old one and fsync the directory, so a crash leaves the old or the new
// checkpoint, never a torn one.
func writeCheckpoint(path string, entries map[string]*entry) error {
	cf := checkpointFile{Version: 1, Files: make([]*entry, 0, len(entries))}
	for _, e := range entries {
		cf.Files = append(cf.Files, e)
	}
	b, err := json.Marshal(cf)
	if err != nil {
		return fmt.Errorf("%w: encode: %w", ErrCheckpoint, err)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".checkpoint-*")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%w: write %s: %w", ErrCheckpoint, path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%w: sync %s: %w", ErrCheckpoint, dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("%w: sync %s: %w", ErrCheckpoint, dir, err)
	}
	return nil
}
