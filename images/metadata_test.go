package images

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/machined-go/machined/internal/filetest"
	"golang.org/x/sys/unix"
)

func writeOSTree(t *testing.T, root, id, hostname string) {
	t.Helper()
	filetest.WriteFile(t, filepath.Join(root, "usr/lib/os-release"), "ID="+id+"\nPRETTY_NAME=\"Test "+id+"\"\n", 0o644)
	filetest.WriteFile(t, filepath.Join(root, "etc/hostname"), "# comment\n\n"+hostname+"\n", 0o644)
	filetest.WriteFile(t, filepath.Join(root, "etc/machine-id"), "0123456789ABCDEF0123456789abcdef\n", 0o444)
	filetest.WriteFile(t, filepath.Join(root, "etc/machine-info"), "PRETTY_HOSTNAME='Box'\nCHASSIS=vm\n", 0o644)
}

func TestTreeMetadata(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	writeOSTree(t, tree, "inside", "inner-host")
	// os-release in /etc is a symlink escaping the tree, absolutely and with
	// "..": both resolve inside it.
	os.Symlink("/../../../usr/lib/os-release", filepath.Join(tree, "etc/os-release"))
	p, _ := testPool(t, dir)
	img, _ := p.Get("tree")
	md, err := p.Metadata(context.Background(), img, AllMetadata)
	if err != nil {
		t.Fatal(err)
	}
	want := Metadata{
		Hostname:    "inner-host",
		MachineID:   "0123456789abcdef0123456789abcdef",
		MachineInfo: []string{"PRETTY_HOSTNAME=Box", "CHASSIS=vm"},
		OSRelease:   []string{"ID=inside", "PRETTY_NAME=Test inside"},
	}
	if !metadataEqual(md, want) {
		t.Errorf("Metadata = %+v, want %+v", md, want)
	}

	// Changes show at once: trees are not cached.
	filetest.WriteFile(t, filepath.Join(tree, "etc/hostname"), "changed\n", 0o644)
	if md, _ = p.Metadata(context.Background(), img, AllMetadata); md.Hostname != "changed" {
		t.Errorf("after a change: hostname %q", md.Hostname)
	}
}

// Hostile trees: a hostname link leading out of the tree finds the tree's own
// file, a FIFO is not opened (which would block), an oversized file is not read.
func TestTreeMetadataHostile(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	mkdirs(t, filepath.Join(tree, "etc"))
	os.Symlink("/etc/hostname-inside", filepath.Join(tree, "etc/hostname"))
	filetest.WriteFile(t, filepath.Join(tree, "etc/hostname-inside"), "contained\n", 0o644)
	if err := unix.Mkfifo(filepath.Join(tree, "etc/machine-info"), 0o644); err != nil {
		t.Fatal(err)
	}
	filetest.WriteFile(t, filepath.Join(tree, "etc/os-release"), "ID=big\n"+strings.Repeat("#", maxMetadataFile), 0o644)
	filetest.WriteFile(t, filepath.Join(tree, "usr/lib/os-release"), "ID=fallback\n", 0o644)
	os.Symlink("/proc/self/root/etc/machine-id", filepath.Join(tree, "etc/machine-id"))
	p, _ := testPool(t, dir)
	img, _ := p.Get("tree")
	md, err := p.Metadata(context.Background(), img, AllMetadata)
	if err != nil {
		t.Fatal(err)
	}
	if md.Hostname != "contained" || md.MachineInfo != nil || md.OSRelease != nil || md.MachineID != "" {
		t.Errorf("hostile tree: %+v", md)
	}
	// Just under the bound is read.
	filetest.WriteFile(t, filepath.Join(tree, "etc/os-release"), "ID=big\n"+strings.Repeat("#", maxMetadataFile-8), 0o644)
	if md, _ = p.Metadata(context.Background(), img, AllMetadata); !slices.Equal(md.OSRelease, []string{"ID=big"}) {
		t.Errorf("file under the bound: %v", md.OSRelease)
	}
}

func TestParseHostnameAndMachineID(t *testing.T) {
	for in, want := range map[string]string{
		"host\n":                 "host",
		"  spaced  \n":           "spaced",
		"#c\nreal":               "real",
		".lead..dots.\n":         "lead.dots",
		"-x-":                    "x",
		"under_score!":           "underscore",
		"":                       "",
		strings.Repeat("a", 100): strings.Repeat("a", 64),
	} {
		if got := parseHostname([]byte(in)); got != want {
			t.Errorf("parseHostname(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"0123456789abcdef0123456789abcdef\n":   "0123456789abcdef0123456789abcdef",
		"0123456789ABCDEF0123456789ABCDEF":     "0123456789abcdef0123456789abcdef",
		"00000000000000000000000000000000\n":   "",
		"uninitialized\n":                      "",
		"0123456789abcdef0123456789abcdeg\n":   "",
		"0123456789abcdef0123456789abcdef\n\n": "",
	} {
		if got := parseMachineID([]byte(in)); got != want {
			t.Errorf("parseMachineID(%q) = %q, want %q", in, got, want)
		}
	}
}

// makeGPTImage builds a raw disk image with a GPT holding one partition of the
// given type, an ext4 file system made from root.
func makeGPTImage(t *testing.T, path, partType, root string) {
	t.Helper()
	run(t, "truncate", "-s", "40M", path)
	layout := fmt.Sprintf("label: gpt\nstart=2048, size=65536, type=%s\n", partType)
	cmd := execCommand("sfdisk", "-q", path)
	cmd.Stdin = strings.NewReader(layout)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	run(t, "mkfs.ext4", "-q", "-F", "-E", "offset=1048576", "-d", root, path, "32M")
}

func TestRawGPTMetadata(t *testing.T) {
	requireRoot(t)
	for _, tool := range []string{"sfdisk", "mkfs.ext4"} {
		if _, err := lookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := t.TempDir()
	root := filepath.Join(t.TempDir(), "root")
	writeOSTree(t, root, "rawos", "raw-host")
	os.Symlink("../usr/lib/os-release", filepath.Join(root, "etc/os-release"))
	img := filepath.Join(dir, "disk.raw")
	makeGPTImage(t, img, "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", root)

	p, _ := testPool(t, dir)
	image, err := p.Get("disk")
	if err != nil {
		t.Fatal(err)
	}
	md, err := p.Metadata(context.Background(), image, AllMetadata)
	if err != nil {
		t.Fatal(err)
	}
	if md.Hostname != "raw-host" || !slices.Equal(md.OSRelease, []string{"ID=rawos", "PRETTY_NAME=Test rawos"}) ||
		md.MachineID != "0123456789abcdef0123456789abcdef" {
		t.Errorf("raw metadata %+v", md)
	}
	// Nothing stays behind: the mount was attached nowhere, the loop device
	// clears itself.
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), "disk.raw") {
		t.Errorf("mount left:\n%s", mi)
	}
	waitNoLoopFor(t, img)

	// Cached: a second read gives the same without attaching anything; a change
	// of the image is seen.
	if p.meta.len() != 1 {
		t.Errorf("cache holds %d entries", p.meta.len())
	}
	reads := 0
	readDisk = func(path string) (Metadata, error) { reads++; return readDiskMetadata(path) }
	t.Cleanup(func() { readDisk = readDiskMetadata })
	md2, _ := p.Metadata(context.Background(), image, AllMetadata)
	if reads != 0 {
		t.Errorf("unchanged image read again")
	}
	if !metadataEqual(md, md2) {
		t.Errorf("cached %+v != %+v", md2, md)
	}
	filetest.WriteFile(t, filepath.Join(root, "etc/hostname"), "new-host\n", 0o644)
	os.Remove(img)
	makeGPTImage(t, img, "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", root)
	image, _ = p.Get("disk")
	if md, _ = p.Metadata(context.Background(), image, AllMetadata); md.Hostname != "new-host" || reads != 1 {
		t.Errorf("after the image changed: hostname %q (%d reads)", md.Hostname, reads)
	}

	// A writable container holds the image exclusively: not mounted again, but
	// what was read before is still served. A read-only one (shared) is no
	// obstacle.
	lock, err := p.lockImagePath(image.Path)
	if err != nil {
		t.Fatal(err)
	}
	if md, err := p.Metadata(context.Background(), image, AllMetadata); err != nil || md.Hostname != "new-host" {
		t.Errorf("cached metadata of a locked image: %+v, %v", md, err)
	}
	os.Chtimes(image.Path, time.Now(), time.Now())
	if _, err := p.Metadata(context.Background(), image, AllMetadata); !errorsIs(err, unix.EBUSY) {
		t.Errorf("changed image in use: %v, want EBUSY", err)
	}
	lock.release()
	shared, err := p.lockImage(image.Path, false)
	if err != nil {
		t.Fatal(err)
	}
	if md, err := p.Metadata(context.Background(), image, AllMetadata); err != nil || md.Hostname != "new-host" {
		t.Errorf("image in read-only use: %+v, %v", md, err)
	}
	shared.release()

	// A generic Linux partition counts when it is the only one; a partition of
	// another architecture does not.
	makeGPTImage(t, filepath.Join(dir, "generic.raw"), "0fc63daf-8483-4772-8e79-3d69d8477de4", root)
	g, err := p.Get("generic")
	if err != nil {
		t.Fatal(err)
	}
	if md, err := p.Metadata(context.Background(), g, AllMetadata); err != nil || md.Hostname != "new-host" {
		t.Errorf("generic partition: %+v, %v", md, err)
	}
	// A bare file system without a partition table is the root itself.
	bare := filepath.Join(dir, "bare.raw")
	run(t, "truncate", "-s", "32M", bare)
	run(t, "mkfs.ext4", "-q", "-F", "-d", root, bare)
	if b, err := p.Get("bare"); err != nil {
		t.Fatal(err)
	} else if md, err := p.Metadata(context.Background(), b, AllMetadata); err != nil || md.Hostname != "new-host" {
		t.Errorf("bare file system: %+v, %v", md, err)
	}
	makeGPTImage(t, filepath.Join(dir, "arm.raw"), "b921b045-1df0-41c3-af44-4c6f280d3fae", root)
	a, err := p.Get("arm")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Metadata(context.Background(), a, AllMetadata); localArchitectures[0] == "x86-64" && !errorsIs(err, unix.ENXIO) {
		t.Errorf("an arm64 root partition on x86-64: %v, want ENXIO", err)
	}
}

// waitNoLoopFor waits until no loop device is backed by file (autoclear runs
// once the last user is gone, which the kernel finishes after our close).
func waitNoLoopFor(t *testing.T, file string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := execCommand("losetup", "-j", file).Output()
		if len(strings.TrimSpace(string(out))) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("loop device left for %s: %s", file, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMetadataCacheBound(t *testing.T) {
	var c metadataCache
	for i := range maxCachedMetadata + 10 {
		c.put(fmt.Sprint(i), metaKey{ino: uint64(i)}, Metadata{Hostname: "h"})
	}
	if c.len() != maxCachedMetadata {
		t.Errorf("cache holds %d, bound %d", c.len(), maxCachedMetadata)
	}
	c.put("x", metaKey{ino: 1}, Metadata{Hostname: "a"})
	if _, ok := c.get("x", metaKey{ino: 2}); ok {
		t.Errorf("stale key served")
	}
	if md, ok := c.get("x", metaKey{ino: 1}); !ok || md.Hostname != "a" {
		t.Errorf("fresh key not served")
	}
}

func metadataEqual(a, b Metadata) bool {
	return a.Hostname == b.Hostname && a.MachineID == b.MachineID &&
		slices.Equal(a.MachineInfo, b.MachineInfo) && slices.Equal(a.OSRelease, b.OSRelease)
}

// Each part reads its own file alone (os-release: /etc's, else /usr/lib's) and
// fills its field as a whole reading does; the other fields stay empty.
func TestTreeMetadataParts(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	writeOSTree(t, tree, "inside", "inner-host")
	p, _ := testPool(t, dir)
	img, _ := p.Get("tree")
	all, err := p.Metadata(context.Background(), img, AllMetadata)
	if err != nil {
		t.Fatal(err)
	}
	var opened []string
	t.Cleanup(func() { readTreeFile = readInRoot })
	readTreeFile = func(rootfd int, path string) ([]byte, error) {
		opened = append(opened, path)
		return readInRoot(rootfd, path)
	}
	for _, c := range []struct {
		part  MetadataParts
		files []string
		want  Metadata
	}{
		{PartHostname, []string{"etc/hostname"}, Metadata{Hostname: all.Hostname}},
		{PartMachineID, []string{"etc/machine-id"}, Metadata{MachineID: all.MachineID}},
		{PartMachineInfo, []string{"etc/machine-info"}, Metadata{MachineInfo: all.MachineInfo}},
		{PartOSRelease, []string{"etc/os-release", "usr/lib/os-release"}, Metadata{OSRelease: all.OSRelease}},
	} {
		opened = nil
		md, err := p.Metadata(context.Background(), img, c.part)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(opened, c.files) {
			t.Errorf("part %d opened %v, want %v", c.part, opened, c.files)
		}
		if !metadataEqual(md, c.want) {
			t.Errorf("part %d = %+v, want %+v", c.part, md, c.want)
		}
	}
	opened = nil
	p.Metadata(context.Background(), img, AllMetadata)
	if len(opened) != 5 {
		t.Errorf("a whole reading opened %v", opened)
	}
}
