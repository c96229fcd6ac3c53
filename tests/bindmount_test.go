package tests

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/machined-go/machined/client"
)

// findmntIn is what findmnt -N shows of target in leader's mount namespace:
// "TARGET OPTIONS", or "" when nothing is mounted there.
func findmntIn(t *testing.T, l *leader, target string) string {
	t.Helper()
	out, _ := exec.Command("findmnt", "-N", strconv.Itoa(l.pid), "-n", "-o", "TARGET,OPTIONS", "--target", target).Output()
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == target {
			return line
		}
	}
	return ""
}

func hasOption(line, opt string) bool {
	f := strings.Fields(line)
	return len(f) == 2 && strings.Contains(","+f[1]+",", ","+opt+",")
}

// BindMount into a plain container with the Go client: a directory,
// read-only, on a destination made for it; a file on an existing file; a
// missing destination without mkdir.
func TestBindMountPlainContainer(t *testing.T) {
	d := startDaemon(t)
	root := makeRootfs(t)
	l := spawnContainer(t, root, 0)
	register(t, d, "bind-plain", l.pid)
	c := dialClient(t, d)
	ctx := context.Background()
	m := client.ByName("bind-plain")
	src := t.TempDir()
	writeOwnedFile(t, src+"/file", "bound\n", 0o644, 0, 0)

	if err := c.BindMount(ctx, m, client.BindMountRequest{Source: src, Destination: "/mnt/deep/x", ReadOnly: true, Mkdir: true}); err != nil {
		t.Fatal(err)
	}
	line := findmntIn(t, l, "/mnt/deep/x")
	if line == "" || !hasOption(line, "ro") {
		t.Fatalf("findmnt -N: %q, want /mnt/deep/x read-only", line)
	}
	if s := readFile(t, inContainer(l, "/mnt/deep/x/file")); s != "bound\n" {
		t.Errorf("through the mount: %q", s)
	}
	if err := os.WriteFile(inContainer(l, "/mnt/deep/x/new"), nil, 0o644); err == nil {
		t.Error("read-only bind mount is writable")
	}
	if _, err := os.Stat(root + "/mnt/deep/x/file"); err == nil {
		t.Error("mount visible outside the container's mount namespace")
	}

	writeOwnedFile(t, root+"/etc/target", "old\n", 0o644, 0, 0)
	if err := c.BindMount(ctx, m, client.BindMountRequest{Source: src + "/file", Destination: "/etc/target"}); err != nil {
		t.Fatal(err)
	}
	if line := findmntIn(t, l, "/etc/target"); line == "" || !hasOption(line, "rw") {
		t.Errorf("findmnt -N: %q, want /etc/target read-write", line)
	}
	if s := readFile(t, inContainer(l, "/etc/target")); s != "bound\n" {
		t.Errorf("file mount: %q", s)
	}
	wantErrno(t, c.BindMount(ctx, m, client.BindMountRequest{Source: src, Destination: "/missing"}), syscall.ENOENT)
	// varlinkctl, destination defaulting to the source path.
	os.MkdirAll(root+src, 0o755)
	if _, errOut, code := varlinkctl(t, "call", d.sock(), "io.systemd.Machine.BindMount", `{"name":"bind-plain","source":"`+src+`","readOnly":true}`); code != 0 {
		t.Fatalf("varlinkctl BindMount: %s", errOut)
	}
	if line := findmntIn(t, l, src); !hasOption(line, "ro") {
		t.Errorf("varlinkctl bind: findmnt %q", line)
	}
	// A destination through the container's symlink stays inside it.
	up := strings.Repeat("/..", 16)
	hostDir := t.TempDir()
	os.Symlink(up+hostDir, root+"/etc/outside")
	c.BindMount(ctx, m, client.BindMountRequest{Source: src, Destination: "/etc/outside/sub", Mkdir: true})
	if _, err := os.Stat(hostDir + "/sub"); err == nil {
		t.Error("mkdir through a container symlink created a directory on the host")
	}
}

// A container with a user namespace gets an idmapped mount: a file of host
// uid 0 is the container's root inside (host uid shift, seen from here).
// A file system that cannot idmap is named in the refusal.
func TestBindMountIdmapped(t *testing.T) {
	const shift = 400000
	d := startDaemon(t)
	root := makeRootfs(t)
	l := spawnContainer(t, root, shift)
	register(t, d, "bind-userns", l.pid)
	c := dialClient(t, d)
	ctx := context.Background()
	m := client.ByName("bind-userns")
	src := t.TempDir()
	writeOwnedFile(t, src+"/rootfile", "mine\n", 0o644, 0, 0)

	if err := c.BindMount(ctx, m, client.BindMountRequest{Source: src, Destination: "/mnt/y", Mkdir: true}); err != nil {
		t.Fatal(err)
	}
	line := findmntIn(t, l, "/mnt/y")
	if line == "" || !hasOption(line, "idmapped") {
		t.Fatalf("findmnt -N: %q, want an idmapped mount on /mnt/y", line)
	}
	if uid, gid := statOwner(t, inContainer(l, "/mnt/y/rootfile")); uid != shift || gid != shift {
		t.Errorf("host root's file seen as %d:%d through the mount, want the container's root %d", uid, gid, shift)
	}
	if uid, _ := statOwner(t, src+"/rootfile"); uid != 0 {
		t.Errorf("the file itself changed owner: %d", uid)
	}
	// sysfs cannot be idmapped.
	err := c.BindMount(ctx, m, client.BindMountRequest{Source: "/sys/kernel", Destination: "/mnt/sys", Mkdir: true})
	wantInvalidReply(t, err, "source")
	if _, err := getOne(t, d, "bind-userns"); err != nil {
		t.Fatal(err)
	}
}

// nobody may bind nothing, not even into its own user-namespaced container:
// that mount would be idmapped, and root's private directory (which nobody
// can name, O_PATH needs no rights on the directory itself) would be its
// container root's, that is nobody's.
func TestBindMountAsNobody(t *testing.T) {
	d := startDaemon(t)
	nc := dialClient(t, d, asNobody())
	ctx := context.Background()
	secret, err := os.MkdirTemp("/tmp", "machined-bind-secret-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(secret) })
	os.Chmod(secret, 0o700)

	plain := spawnLeaderWith(t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}})
	if err := nc.Register(ctx, client.RegisterRequest{Name: "bind-nobody-plain", Class: client.ClassContainer, LeaderPID: plain.pid}); err != nil {
		t.Fatal(err)
	}
	wantReply(t, nc.BindMount(ctx, client.ByName("bind-nobody-plain"), client.BindMountRequest{Source: secret, Destination: "/tmp/x"}), "org.varlink.service.PermissionDenied")

	root := makeRootfs(t)
	os.Chmod(root+"/tmp", os.ModeSticky|0o777)
	l := spawnContainer(t, root, 65534)
	if err := nc.Register(ctx, client.RegisterRequest{Name: "bind-nobody-ns", Class: client.ClassContainer, LeaderPID: l.pid}); err != nil {
		t.Fatal(err)
	}
	m := client.ByName("bind-nobody-ns")
	wantReply(t, nc.BindMount(ctx, m, client.BindMountRequest{Source: secret, Destination: "/tmp/secret", Mkdir: true}), "org.varlink.service.PermissionDenied")
	if findmntIn(t, l, "/tmp/secret") != "" {
		t.Fatal("nobody mounted root's private directory into its container")
	}
	// Root may.
	if err := dialClient(t, d).BindMount(ctx, m, client.BindMountRequest{Source: secret, Destination: "/tmp/secret", Mkdir: true}); err != nil {
		t.Fatal(err)
	}
	if findmntIn(t, l, "/tmp/secret") == "" {
		t.Fatal("root's bind mount not there")
	}
}
