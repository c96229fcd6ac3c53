package proc

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReadFileInRoot(t *testing.T) {
	_, root := tree(t, map[string]string{
		"etc/passwd":       "root:x:0:0::/root:/bin/sh\n",
		"etc/group":        "->/usr/share/group",
		"usr/share/group":  "root:x:0:\n",
		"etc/big":          strings.Repeat("x", 101),
		"etc/fifo":         "fifo",
		"etc/dir":          "dir",
		"etc/escape":       "->../../../../../etc/hostname",
		"etc/hostname-ish": "inside\n",
	})
	for _, c := range []struct {
		path  string
		limit int
		want  string
		err   error
	}{
		{"etc/passwd", 100, "root:x:0:0::/root:/bin/sh\n", nil},
		{"/etc/passwd", 100, "root:x:0:0::/root:/bin/sh\n", nil},
		// Absolute symlinks resolve inside the tree.
		{"etc/group", 100, "root:x:0:\n", nil},
		// The limit itself passes, one byte more does not.
		{"etc/big", 101, strings.Repeat("x", 101), nil},
		{"etc/big", 100, "", syscall.EFBIG},
		{"etc/fifo", 100, "", syscall.EINVAL},
		{"etc/dir", 100, "", syscall.EISDIR},
		{"etc/missing", 100, "", syscall.ENOENT},
		{"etc/escape", 100, "", syscall.ENOENT},
	} {
		got, err := ReadFileInRoot(root, c.path, c.limit)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%s (limit %d): %q, %v; want %v", c.path, c.limit, got, err, c.err)
			}
			continue
		}
		if err != nil || string(got) != c.want {
			t.Errorf("%s (limit %d): %q, %v; want %q", c.path, c.limit, got, err, c.want)
		}
	}
}

func TestStatInRoot(t *testing.T) {
	_, root := tree(t, map[string]string{
		"bin/sh":    "#!",
		"bin/ash":   "->/bin/sh",
		"home/user": "dir",
		"fifo":      "fifo",
		"escape":    "->../../../../../../bin",
	})
	for _, c := range []struct {
		path string
		mode uint32
	}{
		{"/bin/sh", unix.S_IFREG},
		{"/bin/ash", unix.S_IFREG},
		{"/home/user", unix.S_IFDIR},
		// Looked at, not opened: a FIFO with no writer does not block.
		{"/fifo", unix.S_IFIFO},
		{"/escape", unix.S_IFDIR},
	} {
		st, err := StatInRoot(root, c.path)
		if err != nil || st.Mode&unix.S_IFMT != c.mode {
			t.Errorf("%s: mode %o, %v; want type %o", c.path, st.Mode&unix.S_IFMT, err, c.mode)
		}
	}
	// /escape resolved to the tree's own /bin, where sh is.
	if _, err := StatInRoot(root, "/escape/sh"); err != nil {
		t.Errorf("escape/sh: %v", err)
	}
	if _, err := StatInRoot(root, "/nope"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("missing: %v, want ENOENT", err)
	}
}
