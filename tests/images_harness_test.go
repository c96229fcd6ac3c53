package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Helpers of the image tests: pools on ext4 (the temporary directory) and on
// btrfs (a loop device made by the test), OS trees, a GPT disk image.

var nobodyCred = &syscall.Credential{Uid: 65534, Gid: 65534}

// mustRun runs a setup command and fails the test if it fails.
func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// newPoolDir is an empty pool directory on the temporary directory's file
// system (ext4 here), readable by everyone.
func newPoolDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "machined-images-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("chattr", "-R", "-i", dir).Run()
		os.RemoveAll(dir)
	})
	os.Chmod(dir, 0o755)
	return dir
}

// newBtrfsPool is a pool directory at the root of a btrfs file system on a loop
// device, with quotas enabled; everything goes when the test ends.
func newBtrfsPool(t *testing.T) string {
	t.Helper()
	needRoot(t)
	if _, err := exec.LookPath("mkfs.btrfs"); err != nil {
		t.Fatal("mkfs.btrfs not installed: run `make deps` (btrfs-progs)")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "fs.img")
	mustRun(t, "truncate", "-s", "300M", img)
	mustRun(t, "mkfs.btrfs", "-q", img)
	dev := strings.TrimSpace(mustRun(t, "losetup", "-f", "--show", img))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "mount", dev, mnt)
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	mustRun(t, "btrfs", "quota", "enable", mnt)
	return mnt
}

// writeOSTree makes a directory image with os-release, hostname and machine-id.
func writeOSTree(t *testing.T, root, pretty, hostname string) {
	t.Helper()
	files := map[string]string{
		"usr/lib/os-release": fmt.Sprintf("ID=testos\nPRETTY_NAME=%q\n", pretty),
		"etc/hostname":       hostname + "\n",
		"etc/machine-id":     "0123456789abcdef0123456789abcdef\n",
		"etc/machine-info":   "PRETTY_HOSTNAME=\"Pretty " + hostname + "\"\n",
		"srv/data":           "payload\n",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("../usr/lib/os-release", filepath.Join(root, "etc/os-release"))
}

// gptImage writes a GPT disk image whose x86-64 root partition holds an ext4
// file system made from the tree root.
func gptImage(t *testing.T, path, root string) {
	t.Helper()
	mustRun(t, "truncate", "-s", "40M", path)
	cmd := exec.Command("sfdisk", "-q", path)
	cmd.Stdin = strings.NewReader("label: gpt\nstart=2048, size=65536, type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	mustRun(t, "mkfs.ext4", "-q", "-F", "-E", "offset=1048576", "-d", root, path, "32M")
}

// immutable reports whether path has the immutable attribute.
func immutable(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		t.Fatal(err)
	}
	return flags&0x10 != 0 // FS_IMMUTABLE_FL
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
