package filetest

import (
	"os"
	"path/filepath"
	"testing"
)

// WriteFile writes content to path with mode, the umask notwithstanding,
// creating the directories above it; any failure ends the test.
func WriteFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode passes through the umask, and only applies to a new file.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
