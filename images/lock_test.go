package images

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/machined-go/machined/internal/filetest"
	"golang.org/x/sys/unix"
)

func TestLocksAreOFDAndExclusive(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	p, cfg := testPool(t, dir)
	tree := filepath.Join(dir, "tree")
	mkdirs(t, tree)
	l, err := p.lockImagePath(tree)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	unix.Stat(tree, &st)
	global := filepath.Join(cfg.LockDir, "inode-"+itoa(st.Dev)+":"+itoa(st.Ino))
	local := filepath.Join(dir, ".#tree.lck")
	for _, f := range []string{global, local} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("lock file %s missing: %v", f, err)
		}
	}
	locks, _ := os.ReadFile("/proc/locks")
	if !strings.Contains(string(locks), "OFDLCK ADVISORY  WRITE") {
		t.Errorf("no OFD write lock in /proc/locks:\n%s", locks)
	}
	if _, err := p.lockImagePath(tree); !errors.Is(err, unix.EBUSY) {
		t.Errorf("second lock = %v, want EBUSY", err)
	}
	for name, err := range map[string]error{
		"rename":   p.Rename("tree", "other"),
		"readonly": p.MarkReadOnly("tree", true),
		"remove":   p.Remove(context.Background(), "tree"),
	} {
		if !errors.Is(err, unix.EBUSY) {
			t.Errorf("%s while locked = %v, want EBUSY", name, err)
		}
	}
	l.release()
	for _, f := range []string{global, local} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("lock file %s left after release", f)
		}
	}
	if err := p.Rename("tree", "other"); err != nil {
		t.Errorf("rename after release: %v", err)
	}

	// New names are locked too, and the host's name never is free.
	nl, err := p.lockName("fresh")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Clone(context.Background(), "other", "fresh", false); !errors.Is(err, unix.EBUSY) {
		t.Errorf("clone to a locked name = %v, want EBUSY", err)
	}
	nl.release()
	if _, err := p.lockName(HostName); !errors.Is(err, unix.EBUSY) {
		t.Errorf("lockName(.host) = %v", err)
	}
	if _, err := p.lockImagePath("/"); !errors.Is(err, unix.EBUSY) {
		t.Errorf("exclusive lock on / = %v", err)
	}
}

func TestLockingDisabled(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	p, _ := testPool(t, dir)
	mkdirs(t, filepath.Join(dir, "tree"))
	l, _ := p.lockImagePath(filepath.Join(dir, "tree"))
	defer l.release()
	t.Setenv("SYSTEMD_NSPAWN_LOCK", "0")
	if err := p.MarkReadOnly("tree", false); err != nil {
		t.Errorf("with SYSTEMD_NSPAWN_LOCK=0: %v", err)
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// busyboxTree makes a minimal tree systemd-nspawn can run /bin/sleep in.
func busyboxTree(t *testing.T, root string) {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox not installed")
	}
	for _, d := range []string{"bin", "etc", "usr/lib", "proc", "sys", "dev", "tmp", "run", "var"} {
		mkdirs(t, filepath.Join(root, d))
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	filetest.WriteFile(t, filepath.Join(root, "bin/busybox"), string(data), 0o755)
	for _, l := range []string{"sh", "sleep"} {
		os.Symlink("busybox", filepath.Join(root, "bin", l))
	}
	filetest.WriteFile(t, filepath.Join(root, "usr/lib/os-release"), "ID=busybox\n", 0o644)
}

// The pool and a real systemd-nspawn see each other's locks: while nspawn runs
// an image, rename, read-only and remove answer EBUSY; afterwards they work. And
// nspawn refuses an image the pool holds.
func TestLocksAgainstNspawn(t *testing.T) {
	requireRoot(t)
	nspawn, err := exec.LookPath("systemd-nspawn")
	if err != nil {
		t.Skip("systemd-nspawn not installed")
	}
	dir := t.TempDir()
	tree := filepath.Join(dir, "ct")
	busyboxTree(t, tree)
	// nspawn's own lock directory: the global lock only counts there.
	p := NewPool(Config{SearchPath: []string{dir}, PoolPath: dir, NspawnDirs: []string{t.TempDir()}})

	cmd := exec.Command(nspawn, "-q", "--register=no", "--keep-unit", "-D", tree, "/bin/sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		}
	}
	t.Cleanup(stop)
	// Wait for nspawn to take its lock (no assertion on how long it takes).
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, ".#ct.lck")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nspawn never locked the image:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for name, err := range map[string]error{
		"rename":   p.Rename("ct", "other"),
		"readonly": p.MarkReadOnly("ct", true),
		"remove":   p.Remove(context.Background(), "ct"),
	} {
		if !errors.Is(err, unix.EBUSY) {
			t.Errorf("%s while nspawn runs = %v, want EBUSY", name, err)
		}
	}
	if _, err := p.Clean(context.Background(), CleanAll); err != nil {
		t.Errorf("Clean while nspawn runs = %v, want the image skipped", err)
	}
	if _, err := p.Get("ct"); err != nil {
		t.Errorf("image gone while in use: %v", err)
	}
	stop()

	// The container's processes die after nspawn (their parent-death signal):
	// wait for the last of them to let go of the lock.
	for {
		err := p.MarkReadOnly("ct", true)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			t.Fatalf("read-only after nspawn stopped: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.MarkReadOnly("ct", false)
	if err := p.Rename("ct", "ct2"); err != nil {
		t.Errorf("rename after nspawn stopped: %v", err)
	}

	// The other way round: nspawn refuses what the pool holds.
	img, err := p.Get("ct2")
	if err != nil {
		t.Fatal(err)
	}
	l, err := p.lockImagePath(img.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()
	refused := exec.Command(nspawn, "-q", "--register=no", "--keep-unit", "-D", img.Path, "/bin/true")
	msg, err := refused.CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "busy") {
		t.Errorf("nspawn ran a locked image: %v\n%s", err, msg)
	}
}
