// Package durable writes files so that a crash or a power cut leaves either
// the whole new file or nothing: the outbox's entries and the evidence
// images both promise that what was acknowledged is on disk.
package durable

import (
	"os"
	"path/filepath"
	"strings"
)

// TempPrefix starts the names of files still being written. A crash leaves
// them behind; whoever owns the directory removes them on start (they were
// never acknowledged).
const TempPrefix = ".tmp-"

// IsTemp reports whether name is a file WriteFile had not finished.
func IsTemp(name string) bool { return strings.HasPrefix(name, TempPrefix) }

// WriteFile writes data to path through a temporary file in the same
// directory, fsyncs it, renames it into place and fsyncs the directory, so
// that after it returns the file is on disk whole; on error the temporary
// file is removed and path is as it was. The directory must exist.
func WriteFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, TempPrefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, making the renames and removals in it
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
