package tests

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/client"
	"github.com/machined-go/machined/internal/filetest"
)

// writeOwnedFile writes content to path with mode and owner.
func writeOwnedFile(t *testing.T, path, content string, mode os.FileMode, uid, gid int) {
	t.Helper()
	filetest.WriteFile(t, path, content, mode)
	if err := os.Lchown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// wantErrno checks that err is io.systemd.System with errno.
func wantErrno(t *testing.T, err error, errno syscall.Errno) {
	t.Helper()
	wantReply(t, err, "io.systemd.System")
	var ce *client.Error
	errors.As(err, &ce)
	if !strings.Contains(ce.Error(), unix.ErrnoName(errno)) && !strings.Contains(ce.Error(), errno.Error()) {
		t.Fatalf("error %v, want errno %s", ce, unix.ErrnoName(errno))
	}
}

// CopyTo and CopyFrom through the Go client on a plain container: a file and
// a tree (hard links kept, symlinks copied as links, modes, owners and times
// kept: no uid shift), EEXIST without replace, replace with it, directories
// merged.
func TestCopyPlainContainer(t *testing.T) {
	d := startDaemon(t)
	root := makeRootfs(t)
	l := spawnContainer(t, root, 0)
	register(t, d, "cp-plain", l.pid)
	c := dialClient(t, d)
	ctx := context.Background()
	m := client.ByName("cp-plain")

	host := t.TempDir()
	writeOwnedFile(t, host+"/one", "one\n", 0o640, 1234, 5678)
	old := unix.NsecToTimespec(1_000_000_000_000_000_000)
	unix.UtimesNano(host+"/one", []unix.Timespec{old, old})
	if err := c.CopyTo(ctx, m, client.CopyRequest{Source: host + "/one", Destination: "/tmp/one"}); err != nil {
		t.Fatal(err)
	}
	got := inContainer(l, "/tmp/one")
	if s := readFile(t, got); s != "one\n" {
		t.Fatalf("copied content %q", s)
	}
	st, _ := os.Lstat(got)
	if st.Mode().Perm() != 0o640 || st.ModTime().Unix() != 1_000_000_000 {
		t.Errorf("copy has mode %v mtime %v", st.Mode(), st.ModTime())
	}
	if uid, gid := statOwner(t, got); uid != 1234 || gid != 5678 {
		t.Errorf("copy owned by %d:%d, want 1234:5678 (no uid shift: as is)", uid, gid)
	}

	// Exists: EEXIST without replace, replaced with it.
	writeOwnedFile(t, host+"/one", "two\n", 0o644, 0, 0)
	wantErrno(t, c.CopyTo(ctx, m, client.CopyRequest{Source: host + "/one", Destination: "/tmp/one"}), syscall.EEXIST)
	if s := readFile(t, got); s != "one\n" {
		t.Fatalf("refused copy changed the file: %q", s)
	}
	if err := c.CopyTo(ctx, m, client.CopyRequest{Source: host + "/one", Destination: "/tmp/one", Replace: true}); err != nil {
		t.Fatal(err)
	}
	if s := readFile(t, got); s != "two\n" {
		t.Fatalf("replaced content %q", s)
	}

	// A tree, destination defaulting to the source path.
	tree := host + "/tree"
	writeOwnedFile(t, tree+"/a/f", "f\n", 0o644, 0, 0)
	if err := os.Link(tree+"/a/f", tree+"/a/b/g"); err != nil {
		os.MkdirAll(tree+"/a/b", 0o755)
		if err := os.Link(tree+"/a/f", tree+"/a/b/g"); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("/etc/passwd", tree+"/a/abs")
	os.Symlink("../f", tree+"/a/b/rel")
	syscall.Mkfifo(tree+"/fifo", 0o600)
	os.MkdirAll(inContainer(l, filepath.Dir(tree)), 0o755)
	if err := c.CopyTo(ctx, m, client.CopyRequest{Source: tree}); err != nil {
		t.Fatal(err)
	}
	in := inContainer(l, tree)
	if inode(t, in+"/a/f") != inode(t, in+"/a/b/g") {
		t.Error("hard link not kept")
	}
	if target, _ := os.Readlink(in + "/a/abs"); target != "/etc/passwd" {
		t.Errorf("absolute symlink copied as %q", target)
	}
	if target, _ := os.Readlink(in + "/a/b/rel"); target != "../f" {
		t.Errorf("relative symlink copied as %q", target)
	}
	if st, err := os.Lstat(in + "/fifo"); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("fifo: %v %v", st, err)
	}
	// Merge: a second copy of the tree with one more file adds it; the
	// existing files make it fail without replace, and pass with it.
	writeOwnedFile(t, tree+"/a/new", "new\n", 0o644, 0, 0)
	wantErrno(t, c.CopyTo(ctx, m, client.CopyRequest{Source: tree}), syscall.EEXIST)
	if err := c.CopyTo(ctx, m, client.CopyRequest{Source: tree, Replace: true}); err != nil {
		t.Fatal(err)
	}
	if s := readFile(t, in+"/a/new"); s != "new\n" {
		t.Errorf("merged file %q", s)
	}

	// And back out.
	back := t.TempDir()
	if err := c.CopyFrom(ctx, m, client.CopyRequest{Source: tree, Destination: back + "/tree"}); err != nil {
		t.Fatal(err)
	}
	if inode(t, back+"/tree/a/f") != inode(t, back+"/tree/a/b/g") {
		t.Error("hard link not kept on the way out")
	}
	if s := readFile(t, back+"/tree/a/b/g"); s != "f\n" {
		t.Errorf("copied out %q", s)
	}
	if left := tempLeft(t, back); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// The container's symlinks and ".." never lead a copy out of its tree: a
// link to the host's secret is copied as a link, a path through a link or
// ".." resolves inside the container.
func TestCopyStaysInContainer(t *testing.T) {
	d := startDaemon(t)
	root := makeRootfs(t)
	secretDir := t.TempDir()
	writeOwnedFile(t, secretDir+"/secret", "host secret\n", 0o600, 0, 0)
	// Enough ".." to climb from anywhere, then the host path.
	up := strings.Repeat("/..", 16)
	os.Symlink(up+secretDir+"/secret", root+"/etc/evil")
	os.Symlink(up+secretDir, root+"/etc/evildir")
	l := spawnContainer(t, root, 0)
	register(t, d, "cp-escape", l.pid)
	c := dialClient(t, d)
	ctx := context.Background()
	m := client.ByName("cp-escape")
	out := t.TempDir()

	if err := c.CopyFrom(ctx, m, client.CopyRequest{Source: "/etc/evil", Destination: out + "/evil"}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(out + "/evil"); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("/etc/evil not copied as a link: %v %v", st, err)
	}
	for _, src := range []string{"/etc/evildir/secret", up + secretDir + "/secret", "/etc/evil/"} {
		err := c.CopyFrom(ctx, m, client.CopyRequest{Source: src, Destination: out + "/stolen"})
		if err == nil {
			// Only the link itself may have come out (read on the host, it
			// leads to the host's file, as any copied link does).
			if st, _ := os.Lstat(out + "/stolen"); st == nil || st.Mode()&os.ModeSymlink == 0 {
				t.Fatalf("CopyFrom %s copied the host's secret", src)
			}
			os.Remove(out + "/stolen")
			continue
		}
		wantReply(t, err, "io.systemd.System")
	}
	// Into the container, a link must not redirect the write to the host.
	writeOwnedFile(t, out+"/payload", "payload\n", 0o644, 0, 0)
	c.CopyTo(ctx, m, client.CopyRequest{Source: out + "/payload", Destination: "/etc/evildir/planted"})
	if _, err := os.Stat(secretDir + "/planted"); err == nil {
		t.Fatal("CopyTo through a container symlink wrote on the host")
	}
	if _, err := getOne(t, d, "cp-escape"); err != nil {
		t.Fatalf("daemon after escapes: %v", err)
	}
}

// Bad requests, each with its own answer, and the daemon serving on.
func TestCopyBadInput(t *testing.T) {
	d := startDaemon(t)
	root := makeRootfs(t)
	l := spawnContainer(t, root, 0)
	register(t, d, "cp-bad", l.pid)
	registerReq(t, d, client.RegisterRequest{Name: "cp-vm", Class: client.ClassVM, LeaderPID: spawnLeader(t).pid})
	for _, tc := range []struct{ method, params, want string }{
		{"CopyTo", `{"name":"cp-bad","source":"relative","destination":"/tmp/x"}`, `"parameter":"source"`},
		{"CopyTo", `{"name":"cp-bad","source":"/tmp/x","destination":"tmp/x"}`, `"parameter":"destination"`},
		{"CopyFrom", `{"name":"cp-bad","source":"/"}`, `"parameter":"source"`},
		{"CopyFrom", `{"name":"cp-bad","source":"/etc/.."}`, `"parameter":"source"`},
		{"CopyFrom", `{"name":"cp-bad","source":"/` + strings.Repeat("a", 256) + `"}`, `"parameter":"source"`},
		{"CopyFrom", `{"name":"cp-bad","source":"/` + strings.Repeat("a/", 2048) + `"}`, `"parameter":"source"`},
		{"CopyFrom", `{"name":"cp-bad"}`, `"parameter":"source"`},
		{"CopyFrom", `{"name":"cp-vm","source":"/etc/passwd"}`, "io.systemd.Machine.NotSupported"},
		{"CopyTo", `{"name":".host","source":"/etc/passwd"}`, "io.systemd.Machine.NotSupported"},
		{"CopyTo", `{"name":"nope","source":"/etc/passwd"}`, "io.systemd.Machine.NoSuchMachine"},
		{"BindMount", `{"name":"cp-vm","source":"/tmp"}`, "io.systemd.Machine.NotSupported"},
		{"BindMount", `{"name":".host","source":"/tmp"}`, "io.systemd.Machine.NotSupported"},
		{"BindMount", `{"name":"cp-bad","source":"tmp"}`, `"parameter":"source"`},
		{"BindMount", `{"name":"cp-bad","source":"/tmp","destination":"/"}`, `"parameter":"destination"`},
	} {
		out, errOut, code := varlinkctl(t, "call", d.sock(), "io.systemd.Machine."+tc.method, tc.params)
		if code == 0 || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("%s %s: %d %s %s, want %s", tc.method, tc.params, code, out, errOut, tc.want)
		}
	}
	// Non-normalized but valid paths are accepted on Varlink (as upstream):
	// ".." resolves inside the container.
	writeOwnedFile(t, root+"/etc/dotdot", "x\n", 0o644, 0, 0)
	out := t.TempDir()
	if _, errOut, code := varlinkctl(t, "call", d.sock(), "io.systemd.Machine.CopyFrom",
		`{"name":"cp-bad","source":"/etc/../etc//dotdot","destination":"`+out+`/dotdot"}`); code != 0 {
		t.Errorf("non-normalized Varlink path refused: %s", errOut)
	}
	if _, err := getOne(t, d, "cp-bad"); err != nil {
		t.Fatalf("daemon after bad input: %v", err)
	}
}

// With a uid shift, copies in belong to the container's root (the shift) and
// copies out to the host's root, whoever owned them.
func TestCopyUserNSOwnership(t *testing.T) {
	const shift = 300000
	d := startDaemon(t)
	root := makeRootfs(t)
	l := spawnContainer(t, root, shift)
	register(t, d, "cp-userns", l.pid)
	c := dialClient(t, d)
	ctx := context.Background()
	m := client.ByName("cp-userns")

	host := t.TempDir()
	writeOwnedFile(t, host+"/in", "in\n", 0o644, 1234, 1234)
	if err := c.CopyTo(ctx, m, client.CopyRequest{Source: host + "/in", Destination: "/tmp/in"}); err != nil {
		t.Fatal(err)
	}
	if uid, gid := statOwner(t, inContainer(l, "/tmp/in")); uid != shift || gid != shift {
		t.Errorf("copied in as %d:%d, want the shift %d", uid, gid, shift)
	}
	writeOwnedFile(t, root+"/tmp/out", "out\n", 0o644, shift+5, shift+6)
	if err := c.CopyFrom(ctx, m, client.CopyRequest{Source: "/tmp/out", Destination: host + "/out"}); err != nil {
		t.Fatal(err)
	}
	if uid, gid := statOwner(t, host+"/out"); uid != 0 || gid != 0 {
		t.Errorf("copied out as %d:%d, want 0:0", uid, gid)
	}
}

// nobody may not copy in or out of a machine it registered in the host's
// user namespace (that machine's root is the host's), but may with its own
// user-namespaced machine, and then only with its own rights on the host.
func TestCopyAsNobody(t *testing.T) {
	d := startDaemon(t)
	nobodyClient := dialClient(t, d, asNobody())
	ctx := context.Background()
	host, err := os.MkdirTemp("/tmp", "machined-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(host) })
	os.Chmod(host, 0o777)
	writeOwnedFile(t, host+"/readable", "readable\n", 0o644, 0, 0)
	writeOwnedFile(t, host+"/secret", "secret\n", 0o600, 0, 0)

	plain := spawnLeaderWith(t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}})
	if err := nobodyClient.Register(ctx, client.RegisterRequest{Name: "cp-nobody-plain", Class: client.ClassContainer, LeaderPID: plain.pid}); err != nil {
		t.Fatal(err)
	}
	wantReply(t, nobodyClient.CopyTo(ctx, client.ByName("cp-nobody-plain"), client.CopyRequest{Source: host + "/readable", Destination: "/tmp/x"}), "org.varlink.service.PermissionDenied")

	root := makeRootfs(t)
	os.Chmod(root+"/tmp", os.ModeSticky|0o777)
	l := spawnContainer(t, root, 65534) // container root is host nobody
	if err := nobodyClient.Register(ctx, client.RegisterRequest{Name: "cp-nobody-ns", Class: client.ClassContainer, LeaderPID: l.pid}); err != nil {
		t.Fatal(err)
	}
	m := client.ByName("cp-nobody-ns")
	if err := nobodyClient.CopyTo(ctx, m, client.CopyRequest{Source: host + "/readable", Destination: "/tmp/readable"}); err != nil {
		t.Fatal(err)
	}
	if s := readFile(t, inContainer(l, "/tmp/readable")); s != "readable\n" {
		t.Errorf("copied %q", s)
	}
	// The host side is read as nobody: root's 0600 file stays unread.
	wantReply(t, nobodyClient.CopyTo(ctx, m, client.CopyRequest{Source: host + "/secret", Destination: "/tmp/secret"}), "org.varlink.service.PermissionDenied")
	if _, err := os.Lstat(inContainer(l, "/tmp/secret")); err == nil {
		t.Fatal("nobody copied root's secret into its container")
	}
	// And written as nobody: files out of the container are nobody's.
	if err := nobodyClient.CopyFrom(ctx, m, client.CopyRequest{Source: "/tmp/readable", Destination: host + "/back"}); err != nil {
		t.Fatal(err)
	}
	if uid, _ := statOwner(t, host+"/back"); uid != 65534 {
		t.Errorf("nobody's copy out owned by %d", uid)
	}
	// Not into a directory nobody may not write.
	wantReply(t, nobodyClient.CopyFrom(ctx, m, client.CopyRequest{Source: "/tmp/readable", Destination: "/root/planted"}), "org.varlink.service.PermissionDenied")

	// Trees are copied by the helper process, with the same identities.
	if err := os.MkdirAll(host+"/tree", 0o755); err != nil {
		t.Fatal(err)
	}
	writeOwnedFile(t, host+"/tree/a", "a\n", 0o644, 0, 0)
	if err := nobodyClient.CopyTo(ctx, m, client.CopyRequest{Source: host + "/tree", Destination: "/tmp/tree"}); err != nil {
		t.Fatal(err)
	}
	if s := readFile(t, inContainer(l, "/tmp/tree/a")); s != "a\n" {
		t.Errorf("tree copied %q", s)
	}
	if err := nobodyClient.CopyFrom(ctx, m, client.CopyRequest{Source: "/tmp/tree", Destination: host + "/tree-back"}); err != nil {
		t.Fatal(err)
	}
	if uid, _ := statOwner(t, host+"/tree-back/a"); uid != 65534 {
		t.Errorf("nobody's tree copied out owned by %d", uid)
	}
	writeOwnedFile(t, host+"/tree/secret", "secret\n", 0o600, 0, 0)
	wantReply(t, nobodyClient.CopyTo(ctx, m, client.CopyRequest{Source: host + "/tree", Destination: "/tmp/tree2"}), "org.varlink.service.PermissionDenied")
	if _, err := os.Lstat(inContainer(l, "/tmp/tree2")); err == nil {
		t.Fatal("nobody's tree with root's secret was copied in")
	}
	if left := tempLeft(t, inContainer(l, "/tmp")); len(left) > 0 {
		t.Errorf("the refused tree copy left %v", left)
	}
}
