package persist

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A registration's save and its removal build their paths on the stack, and
// unregistering a machine that holds its unit is one unlink of the file and
// one of the link, nothing read: each pair allocates nothing.
func TestSaveRemoveDoNotAllocate(t *testing.T) {
	d := ensuredDir(t)
	r := full()
	r.Name, r.Unit = "web", "machine-web.scope"
	for _, tc := range []struct {
		name   string
		remove func(name, unit string) error
	}{
		{"Remove", d.Remove},
		{"RemoveOwn", d.RemoveOwn},
	} {
		allocs := testing.AllocsPerRun(50, func() {
			if err := d.Save(r); err != nil {
				t.Fatal(err)
			}
			if err := tc.remove(r.Name, r.Unit); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%v allocations per Save and %s, want 0", allocs, tc.name)
		}
	}
}

// Paths too long for the stack buffer still work, and an error names the
// whole path, copied: the stack buffer it was built in is gone by then.
func TestDirLongPathsAndErrors(t *testing.T) {
	deep := filepath.Join(t.TempDir(), strings.Repeat("d", 150), strings.Repeat("e", 150), "machines")
	d := Dir{Path: deep}
	if err := d.Ensure(); err != nil {
		t.Fatal(err)
	}
	r := full()
	r.Name, r.Unit = "web", "machine-web.scope"
	if err := d.Save(r); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(deep, "unit:machine-web.scope")); err != nil || target != "web" {
		t.Fatalf("unit link under a long path: %q, %v", target, err)
	}
	if err := d.Remove(r.Name, r.Unit); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(deep, "web")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("record under a long path not removed: %v", err)
	}

	gone := Dir{Path: filepath.Join(t.TempDir(), "missing")}
	err := gone.Save(r)
	var pe *os.PathError
	if !errors.As(err, &pe) || pe.Path != filepath.Join(gone.Path, ".#web") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("save into a missing directory: %v", err)
	}
}

// RemoveOwn takes the record and its unit link without reading the link; a
// link already gone is no error, for either form.
func TestRemoveOwn(t *testing.T) {
	d := ensuredDir(t)
	r := full()
	r.Name, r.Unit = "web", "machine-web.scope"
	if err := d.Save(r); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(d.Path, "unit:machine-web.scope")
	if err := d.RemoveOwn("web", "machine-web.scope"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{link, filepath.Join(d.Path, "web")} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
	if err := d.RemoveOwn("web", "machine-web.scope"); err != nil {
		t.Errorf("RemoveOwn with nothing left: %v", err)
	}
	if err := d.Save(r); err != nil {
		t.Fatal(err)
	}
	os.Remove(link)
	if err := d.Remove("web", "machine-web.scope"); err != nil {
		t.Errorf("Remove with the link already gone: %v", err)
	}
}
