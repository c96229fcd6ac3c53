package tests

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/machined-go/machined/client"
)

// The booted-container fixture itself: the cached tree boots with systemd as
// PID 1, has what the tree script promises, and a container's writes stay in
// its own overlay.
func TestBootedContainer(t *testing.T) {
	c := bootContainer(t, bootOpts{Prepare: func(root string) {
		if err := os.WriteFile(filepath.Join(root, "etc/prepared"), []byte("yes\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}})
	if got := strings.TrimSpace(c.mustRun("cat", "/proc/1/comm")); got != "systemd" {
		t.Errorf("PID 1 is %q", got)
	}
	if got := strings.TrimSpace(c.mustRun("cat", "/etc/prepared")); got != "yes" {
		t.Errorf("Prepare's file reads %q", got)
	}
	if got := strings.TrimSpace(c.mustRun("hostname")); got != "machined-test" {
		t.Errorf("hostname %q", got)
	}
	// Password-less console logins for root and tester (uid 1000).
	for _, u := range []string{"root", "tester"} {
		if f := strings.Fields(c.mustRun("passwd", "--status", u)); len(f) < 2 || f[1] != "NP" {
			t.Errorf("passwd --status %s: %v", u, f)
		}
	}
	if got := strings.TrimSpace(c.mustRun("id", "-u", "tester")); got != "1000" {
		t.Errorf("tester's uid %q", got)
	}
	// Each boot has a machine ID of its own, made at boot, not one the tree carries.
	if id := strings.TrimSpace(c.mustRun("cat", "/etc/machine-id")); len(id) != 32 {
		t.Errorf("machine ID %q", id)
	}
	for _, unit := range []string{"dbus.service", "systemd-logind.service"} {
		if out, _, code := c.run("systemctl", "is-active", unit); code != 0 {
			t.Errorf("%s: %s", unit, out)
		}
	}
	for _, bin := range []string{"/usr/bin/machinectl", "/lib/systemd/systemd-machined", "/usr/lib/polkit-1/polkitd", "/usr/bin/ip", "/usr/bin/ps", "/usr/bin/nsenter", "/bin/login"} {
		c.mustRun("test", "-x", bin)
	}

	// Writes inside land in the overlay, never in the cached tree.
	c.mustRun("sh", "-c", "echo changed > /etc/boot-test-write")
	tree, _ := debianTree()
	if _, err := os.Stat(filepath.Join(tree, "etc/boot-test-write")); !os.IsNotExist(err) {
		t.Errorf("the container wrote into the cached tree: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.Upper, "etc/boot-test-write")); err != nil {
		t.Errorf("not in the overlay: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tree, "etc/prepared")); !os.IsNotExist(err) {
		t.Errorf("Prepare wrote into the cached tree: %v", err)
	}
}

// With --private-users=pick the container's root is an unprivileged uid on
// the host, and the tree still boots.
func TestBootedContainerPrivateUsers(t *testing.T) {
	c := bootContainer(t, bootOpts{PrivateUsers: "pick"})
	b, err := os.ReadFile("/proc/" + strconv.Itoa(c.Leader) + "/uid_map")
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(string(b)); len(f) != 3 || f[0] != "0" || f[1] == "0" {
		t.Errorf("uid_map %q", b)
	}
	if got := strings.TrimSpace(c.mustRun("id", "-u")); got != "0" {
		t.Errorf("uid inside %q", got)
	}
}

// --register=yes: nspawn registers the booted container with our daemon, which
// adopts the scope nspawn runs in and shows the container's systemd as leader;
// in a user namespace too, with its uid shift.
func TestBootedContainerRegisters(t *testing.T) {
	d, bus := startBusDaemon(t, "--units", "cgroup")
	conn := dbusConn(t, bus)
	for _, userns := range []string{"", "pick"} {
		c := bootContainer(t, bootOpts{Daemon: d, Bus: bus, PrivateUsers: userns})
		m, err := getOne(t, d, c.Name)
		if err != nil {
			t.Fatal(err)
		}
		if m.Class != client.ClassContainer || m.Service != "systemd-nspawn" || m.RootDirectory != c.Root || m.Unit != c.Scope {
			t.Errorf("machine %+v", m)
		}
		if m.Leader == nil || m.Leader.PID != c.Leader {
			t.Errorf("leader %+v, want %d", m.Leader, c.Leader)
		}
		var shift uint32
		if err := managerCall(t, conn, "GetMachineUIDShift", c.Name).Store(&shift); err != nil {
			t.Fatalf("GetMachineUIDShift: %v", err)
		}
		if (shift != 0) != (userns != "") {
			t.Errorf("private users %q: uid shift %d", userns, shift)
		}
		c.stop()
		eventually(t, "machine gone with its container", func() bool { return gone(t, d, c.Name) })
	}
}
