package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// tests/setup/debian-tree.sh with stand-ins for debootstrap and chroot: what
// it promises about building (once, atomically, under a lock) without
// downloading a Debian.

// treeStubs writes a debootstrap that makes a skeleton tree, notes each run in
// runs/, and waits for the file release to exist when hold is true (or fails
// when fail is true); and a chroot that does nothing.
func treeStubs(t *testing.T, dir string, hold, fail bool) (env []string) {
	t.Helper()
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(filepath.Join(dir, "runs"), 0o755)
	os.MkdirAll(bin, 0o755)
	script := `#!/bin/sh
for a; do target=$prev; prev=$a; done   # debootstrap ... SUITE TARGET MIRROR
mkdir -p "$target/etc" "$target/var/lib/apt/lists" "$target/var/lib/dbus"
touch "$target/var/lib/apt/lists/x" "$target/half-built"
touch "` + dir + `/runs/$$"
`
	if hold {
		script += `while [ ! -e "` + dir + `/release" ]; do sleep 0.05; done
`
	}
	if fail {
		script += "exit 1\n"
	}
	for name, body := range map[string]string{"debootstrap": script, "chroot": "#!/bin/sh\nexit 0\n"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "MACHINED_TEST_TREE=" + filepath.Join(dir, "cache", "tree"), "DEBIAN_MIRROR=http://mirror.invalid/debian"}
}

func treeRuns(t *testing.T, dir string) int {
	t.Helper()
	e, err := os.ReadDir(filepath.Join(dir, "runs"))
	if err != nil {
		t.Fatal(err)
	}
	return len(e)
}

func startTreeScript(t *testing.T, env []string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	cmd := exec.Command("bash", "setup/debian-tree.sh")
	cmd.Env = append(os.Environ(), env...)
	out := new(strings.Builder)
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}

// childNamed reports whether pid has a child process running name.
func childNamed(pid int, name string) bool {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
	for _, c := range strings.Fields(string(b)) {
		comm, _ := os.ReadFile("/proc/" + c + "/comm")
		if strings.TrimSpace(string(comm)) == name {
			return true
		}
	}
	return false
}

// Two callers at once: the second waits on the lock while the first builds,
// then finds the tree built; debootstrap runs once, the tree appears only
// complete, with its stamp, and nothing is left beside it.
func TestDebianTreeBuildsOnceUnderLock(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	env := treeStubs(t, dir, true, false)
	tree := filepath.Join(dir, "cache", "tree")

	a, aOut := startTreeScript(t, env)
	eventually(t, "first debootstrap running", func() bool { return treeRuns(t, dir) == 1 })
	if _, err := os.Stat(tree); !os.IsNotExist(err) {
		t.Fatalf("the tree exists while being built: %v", err)
	}
	b, bOut := startTreeScript(t, env)
	eventually(t, "second caller waiting on the lock", func() bool { return childNamed(b.Process.Pid, "flock") })
	os.WriteFile(filepath.Join(dir, "release"), nil, 0o644)
	if err := a.Wait(); err != nil {
		t.Fatalf("first caller: %v", err)
	}
	if err := b.Wait(); err != nil {
		t.Fatalf("second caller: %v", err)
	}
	if n := treeRuns(t, dir); n != 1 {
		t.Errorf("debootstrap ran %d times", n)
	}
	for _, out := range []string{aOut.String(), bOut.String()} {
		if strings.TrimSpace(out) != tree {
			t.Errorf("printed %q, want %s", out, tree)
		}
	}
	stamp, err := os.ReadFile(filepath.Join(tree, "etc/machined-test-tree"))
	if err != nil || !strings.HasPrefix(string(stamp), "bookworm minbase ") {
		t.Errorf("stamp %q %v", stamp, err)
	}
	for f, want := range map[string]string{"etc/hostname": "machined-test\n", "etc/machine-id": ""} {
		if b, err := os.ReadFile(filepath.Join(tree, f)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v", f, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(tree, "var/lib/apt/lists/x")); !os.IsNotExist(err) {
		t.Errorf("apt lists kept: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(tree))
	for _, e := range entries {
		if e.Name() != "tree" && e.Name() != "tree.lock" {
			t.Errorf("left beside the tree: %s", e.Name())
		}
	}

	// Current: a third call only checks the stamp.
	c, cOut := startTreeScript(t, env)
	if err := c.Wait(); err != nil || strings.TrimSpace(cOut.String()) != tree || treeRuns(t, dir) != 1 {
		t.Errorf("cached call: %v %q, %d runs", err, cOut.String(), treeRuns(t, dir))
	}
}

// A build that fails leaves no tree and no half-built directory.
func TestDebianTreeFailedBuildLeavesNothing(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	env := treeStubs(t, dir, false, true)
	cmd, _ := startTreeScript(t, env)
	if err := cmd.Wait(); err == nil {
		t.Fatal("the script succeeded though debootstrap failed")
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "cache"))
	for _, e := range entries {
		if e.Name() != "tree.lock" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// A tree whose stamp is not this script's (built by an older version) is
// rebuilt and replaced whole.
func TestDebianTreeRebuildsOnStaleStamp(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	env := treeStubs(t, dir, false, false)
	tree := filepath.Join(dir, "cache", "tree")
	os.MkdirAll(filepath.Join(tree, "etc"), 0o755)
	os.WriteFile(filepath.Join(tree, "etc/machined-test-tree"), []byte("bookworm minbase 0 systemd\n"), 0o644)
	os.WriteFile(filepath.Join(tree, "old-file"), nil, 0o644)
	cmd, out := startTreeScript(t, env)
	if err := cmd.Wait(); err != nil || strings.TrimSpace(out.String()) != tree {
		t.Fatalf("%v %q", err, out.String())
	}
	if treeRuns(t, dir) != 1 {
		t.Error("not rebuilt")
	}
	if _, err := os.Stat(filepath.Join(tree, "old-file")); !os.IsNotExist(err) {
		t.Errorf("the old tree's file survived: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tree, "half-built")); err != nil {
		t.Errorf("the new tree is not in place: %v", err)
	}
}
