package tests

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/client"
)

// machinectl 252 copy-to, copy-from and bind through the D-Bus shim, each
// checked from the other side.
func TestMachinectlCopyAndBind(t *testing.T) {
	d, bus := startBusDaemon(t, "--units", "none")
	root := makeRootfs(t)
	l := spawnContainer(t, root, 0)
	register(t, d, "mctl-files", l.pid)
	mctl := func(args ...string) (string, int) {
		t.Helper()
		out, errOut, code := inSystemdNS(t, d, bus, -1, "machinectl", append([]string{"--no-pager"}, args...)...)
		return out + errOut, code
	}
	host := t.TempDir()

	// A single file, then again: refused without --force, replaced with it.
	writeOwnedFile(t, host+"/file", "first\n", 0o644, 0, 0)
	if out, code := mctl("copy-to", "mctl-files", host+"/file", "/tmp/file"); code != 0 {
		t.Fatalf("copy-to: %s", out)
	}
	if s := readFile(t, inContainer(l, "/tmp/file")); s != "first\n" {
		t.Fatalf("copy-to wrote %q", s)
	}
	writeOwnedFile(t, host+"/file", "second\n", 0o644, 0, 0)
	if out, code := mctl("copy-to", "mctl-files", host+"/file", "/tmp/file"); code == 0 || !strings.Contains(out, "exists") {
		t.Errorf("copy-to over an existing file without --force: %d %s", code, out)
	}
	if out, code := mctl("copy-to", "--force", "mctl-files", host+"/file", "/tmp/file"); code != 0 {
		t.Fatalf("copy-to --force: %s", out)
	}
	if s := readFile(t, inContainer(l, "/tmp/file")); s != "second\n" {
		t.Fatalf("copy-to --force wrote %q", s)
	}

	// A tree with a hard link and a symlink, out of the container.
	writeOwnedFile(t, root+"/srv/tree/a", "a\n", 0o644, 0, 0)
	os.MkdirAll(root+"/srv/tree/sub", 0o755)
	os.Link(root+"/srv/tree/a", root+"/srv/tree/sub/b")
	os.Symlink("/etc/passwd", root+"/srv/tree/sub/link")
	if out, code := mctl("copy-from", "mctl-files", "/srv/tree", host+"/tree"); code != 0 {
		t.Fatalf("copy-from: %s", out)
	}
	if inode(t, host+"/tree/a") != inode(t, host+"/tree/sub/b") {
		t.Error("copy-from lost the hard link")
	}
	if target, _ := os.Readlink(host + "/tree/sub/link"); target != "/etc/passwd" {
		t.Errorf("copy-from symlink: %q", target)
	}
	if out, code := mctl("copy-from", "mctl-files", "/srv/tree", host+"/tree"); code == 0 {
		t.Errorf("copy-from over an existing tree without --force: %s", out)
	}
	if out, code := mctl("copy-from", "--force", "mctl-files", "/srv/tree", host+"/tree"); code != 0 {
		t.Errorf("copy-from --force: %s", out)
	}

	// bind: plain, --read-only, --mkdir.
	src := t.TempDir()
	writeOwnedFile(t, src+"/seen", "seen\n", 0o644, 0, 0)
	os.MkdirAll(root+"/mnt/plain", 0o755)
	if out, code := mctl("bind", "mctl-files", src, "/mnt/plain"); code != 0 {
		t.Fatalf("bind: %s", out)
	}
	if line := findmntIn(t, l, "/mnt/plain"); !hasOption(line, "rw") {
		t.Errorf("bind: findmnt %q", line)
	}
	if out, code := mctl("bind", "--read-only", "--mkdir", "mctl-files", src, "/mnt/made/ro"); code != 0 {
		t.Fatalf("bind --read-only --mkdir: %s", out)
	}
	if line := findmntIn(t, l, "/mnt/made/ro"); !hasOption(line, "ro") {
		t.Errorf("bind --read-only: findmnt %q", line)
	}
	if s := readFile(t, inContainer(l, "/mnt/made/ro/seen")); s != "seen\n" {
		t.Errorf("through the bind: %q", s)
	}
	if out, code := mctl("bind", "mctl-files", src, "/mnt/absent"); code == 0 {
		t.Errorf("bind without --mkdir onto nothing: %s", out)
	}
}

// The D-Bus methods' refusals, with upstream's names and messages, on the
// Manager and on the Machine object.
func TestCopyBindDBusRefusals(t *testing.T) {
	d, bus := startBusDaemon(t, "--units", "none")
	root := makeRootfs(t)
	l := spawnContainer(t, root, 0)
	register(t, d, "dbus-files", l.pid)
	registerReq(t, d, client.RegisterRequest{Name: "dbus-vm", Class: client.ClassVM, LeaderPID: spawnLeader(t).pid})
	c := dbusConn(t, bus)
	obj := c.Object("org.freedesktop.machine1", dbus.ObjectPath("/org/freedesktop/machine1/machine/dbus_2dfiles"))
	for _, tc := range []struct {
		call      *dbus.Call
		name, msg string
	}{
		{managerCall(t, c, "CopyToMachine", "dbus-files", "relative", "/tmp/x"), "org.freedesktop.DBus.Error.InvalidArgs", "Source path must be absolute and normalized."},
		{managerCall(t, c, "CopyFromMachine", "dbus-files", "/etc/../etc/passwd", ""), "org.freedesktop.DBus.Error.InvalidArgs", "Source path must be absolute and normalized."},
		{managerCall(t, c, "CopyFromMachine", "dbus-files", "/etc/passwd", "/tmp//x"), "org.freedesktop.DBus.Error.InvalidArgs", "Destination path must be absolute and normalized."},
		{managerCall(t, c, "CopyFromMachineWithFlags", "dbus-files", "/etc/passwd", "/tmp/x", uint64(2)), "org.freedesktop.DBus.Error.InvalidArgs", "Invalid copy flags 0x2"},
		{managerCall(t, c, "CopyToMachine", "dbus-vm", "/etc/passwd", ""), "org.freedesktop.DBus.Error.NotSupported", "Copying files is only supported on container machines."},
		{managerCall(t, c, "CopyToMachine", ".host", "/etc/passwd", ""), "org.freedesktop.DBus.Error.NotSupported", "Copying files is only supported on container machines."},
		{managerCall(t, c, "BindMountMachine", "dbus-vm", "/tmp", "", false, false), "org.freedesktop.DBus.Error.NotSupported", "Bind mounting is only supported on container machines."},
		{managerCall(t, c, "BindMountMachine", "dbus-files", "/tmp/./x", "", false, false), "org.freedesktop.DBus.Error.InvalidArgs", "Source path must be absolute and normalized."},
		{managerCall(t, c, "CopyToMachine", "nope", "/etc/passwd", ""), "org.freedesktop.machine1.NoSuchMachine", ""},
		{obj.Call("org.freedesktop.machine1.Machine.CopyToWithFlags", 0, "/etc/passwd", "rel", uint64(0)), "org.freedesktop.DBus.Error.InvalidArgs", "Destination path must be absolute and normalized."},
		{obj.Call("org.freedesktop.machine1.Machine.BindMount", 0, "rel", "", false, false), "org.freedesktop.DBus.Error.InvalidArgs", "Source path must be absolute and normalized."},
	} {
		if got := dbusErrorName(tc.call.Err); got != tc.name {
			t.Errorf("%s%v: %v, want %s", tc.call.Method, tc.call.Args, tc.call.Err, tc.name)
			continue
		}
		if de, ok := tc.call.Err.(dbus.Error); tc.msg != "" && (!ok || len(de.Body) == 0 || de.Body[0] != tc.msg) {
			t.Errorf("%s%v: message %v, want %q", tc.call.Method, tc.call.Args, tc.call.Err, tc.msg)
		}
	}
	// nobody, on a machine root registered: refused by the core, after the
	// bus let the call through.
	for _, args := range [][]string{
		{"CopyToMachine", "sss", "dbus-files", "/etc/passwd", "/tmp/nobody"},
		{"BindMountMachine", "sssbb", "dbus-files", "/tmp", "/mnt", "false", "false"},
	} {
		out, errOut, code := busctl(t, bus, &syscall.Credential{Uid: 65534, Gid: 65534}, append([]string{"call", "org.freedesktop.machine1",
			"/org/freedesktop/machine1", "org.freedesktop.machine1.Manager"}, args...)...)
		// busctl shows any AccessDenied as "Access denied": the daemon's
		// log says it was the daemon's refusal, and why.
		if code == 0 || !strings.Contains(errOut, "Access denied") ||
			!strings.Contains(readFile(t, d.dir+"/daemon.log"), `member="`+args[0]+`" path="/org/freedesktop/machine1" err="only root may act inside machine dbus-files`) {
			t.Errorf("nobody's %s: %d %s %s", args[0], code, out, errOut)
		}
	}
	if _, err := os.Lstat(root + "/tmp/nobody"); err == nil {
		t.Error("nobody's copy wrote")
	}
	// The Machine object copies too, with the replace flag.
	host := t.TempDir()
	writeOwnedFile(t, host+"/f", "f\n", 0o644, 0, 0)
	for range 2 {
		if call := obj.Call("org.freedesktop.machine1.Machine.CopyToWithFlags", 0, host+"/f", "/tmp/f", uint64(1)); call.Err != nil {
			t.Fatal(call.Err)
		}
	}
	if call := obj.Call("org.freedesktop.machine1.Machine.CopyTo", 0, host+"/f", "/tmp/f"); dbusErrorName(call.Err) != "org.freedesktop.DBus.Error.FileExists" {
		t.Errorf("CopyTo over a file: %v", call.Err)
	}
	if _, err := getOne(t, d, "dbus-files"); err != nil {
		t.Fatal(err)
	}
}
