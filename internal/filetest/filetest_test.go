package filetest

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The file gets the mode asked for even where the umask would take bits away,
// and an existing file is rewritten with the new mode.
func TestWriteFileMode(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "a", "b", "f")
	WriteFile(t, path, "one", 0o764)
	check := func(want os.FileMode, content string) {
		t.Helper()
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("mode %v, want %v", got, want)
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Errorf("content %q, want %q", b, content)
		}
	}
	check(0o764, "one")
	WriteFile(t, path, "two", 0o640)
	check(0o640, "two")
}
