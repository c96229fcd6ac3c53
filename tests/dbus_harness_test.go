package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/internal/bustest"
)

// privateBus is a dbus-daemon of our own: a system-type bus on a socket in a
// temporary directory. Its policy is open, plus our packaged
// org.freedesktop.machine1.conf, so non-root callers meet the same broker
// rules as on a real system bus. Nothing touches /run/dbus.
type privateBus struct {
	*bustest.Bus
	addr string
}

func startPrivateBus(t testing.TB) *privateBus {
	t.Helper()
	policy, err := filepath.Abs("../packaging/org.freedesktop.machine1.conf")
	if err != nil {
		t.Fatal(err)
	}
	b := bustest.Start(t, "<include>"+policy+"</include>")
	return &privateBus{Bus: b, addr: b.Address}
}

// stop kills the bus daemon (the D-Bus-goes-away test uses it directly).
func (b *privateBus) stop() { b.Stop() }

// startBusDaemon starts machined on a new private bus.
func startBusDaemon(t *testing.T, extra ...string) (*daemon, *privateBus) {
	t.Helper()
	needRoot(t)
	bus := startPrivateBus(t)
	d := startDaemon(t, append([]string{"--bus", bus.addr}, extra...)...)
	waitBusName(t, bus)
	return d, bus
}

func waitBusName(t *testing.T, bus *privateBus) {
	t.Helper()
	c := dbusConn(t, bus)
	eventually(t, "org.freedesktop.machine1 on the bus", func() bool {
		var has bool
		c.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, "org.freedesktop.machine1").Store(&has)
		return has
	})
}

// dbusConn is a plain godbus client connection to the bus.
func dbusConn(t *testing.T, bus *privateBus) *dbus.Conn {
	t.Helper()
	c, err := dbus.Connect(bus.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

const (
	m1Dest    = "org.freedesktop.machine1"
	m1Path    = "/org/freedesktop/machine1"
	m1Manager = "org.freedesktop.machine1.Manager"
	m1Machine = "org.freedesktop.machine1.Machine"
)

// managerCall calls a Manager method from a Go client.
func managerCall(t *testing.T, c *dbus.Conn, method string, args ...any) *dbus.Call {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.Object(m1Dest, m1Path).CallWithContext(ctx, m1Manager+"."+method, 0, args...)
}

func dbusErrorName(err error) string {
	var de dbus.Error
	if errors.As(err, &de) {
		return de.Name
	}
	return ""
}

// busctl runs the real busctl against the private bus.
func busctl(t *testing.T, bus *privateBus, cred *syscall.Credential, args ...string) (string, string, int) {
	t.Helper()
	return run(t, nil, cred, "busctl", append([]string{"--address=" + bus.addr}, args...)...)
}

// systemdNS is a shell prologue that makes the tools of systemd 252 believe
// they run on a systemd host with our daemon, without touching the host (but for
// an empty /run/systemd where no systemd ever ran, to mount over): in a private
// mount namespace, a tmpfs over /run/systemd gets an empty system/
// (sd_booted() tests for it) and bind mounts of the daemon's state, machine
// and userdb directories. Then it drops to $RUN_AS_UID if set and execs the
// command. $RT is the daemon's runtime directory.
const systemdNS = `set -e
mkdir -p /run/systemd
mount -t tmpfs -o mode=0755 tmpfs /run/systemd
mkdir -p /run/systemd/system /run/systemd/machines /run/systemd/machine /run/systemd/userdb
mount --bind "$RT/systemd/machines" /run/systemd/machines
mount --bind "$RT/systemd/machine" /run/systemd/machine
if [ -d "$RT/systemd/userdb" ]; then mount --bind "$RT/systemd/userdb" /run/systemd/userdb; fi
if [ -n "$RUN_AS_UID" ]; then exec setpriv --reuid="$RUN_AS_UID" --regid="$RUN_AS_UID" --clear-groups -- "$@"; fi
exec "$@"`

// inSystemdNS runs a command as systemdNS describes, with
// DBUS_SYSTEM_BUS_ADDRESS pointing at the private bus.
func inSystemdNS(t *testing.T, d *daemon, bus *privateBus, asUID int, name string, args ...string) (string, string, int) {
	t.Helper()
	needMountNS(t)
	env := []string{"RT=" + d.dir, "DBUS_SYSTEM_BUS_ADDRESS=" + bus.addr, "RUN_AS_UID="}
	if asUID >= 0 {
		env[2] = fmt.Sprintf("RUN_AS_UID=%d", asUID)
	}
	return run(t, env, nil, "unshare", append([]string{"-m", "--propagation", "private", "sh", "-c", systemdNS, "sh", name}, args...)...)
}

// startInSystemdNS starts a long-running command (systemd-nspawn) the same
// way; done is closed when it has exited.
func startInSystemdNS(t *testing.T, d *daemon, bus *privateBus, name string, args ...string) (cmd *exec.Cmd, out *bytes.Buffer, done chan struct{}) {
	t.Helper()
	needMountNS(t)
	cmd = exec.Command("unshare", append([]string{"-m", "--propagation", "private", "sh", "-c", systemdNS, "sh", name}, args...)...)
	cmd.Env = append(os.Environ(), "RT="+d.dir, "DBUS_SYSTEM_BUS_ADDRESS="+bus.addr, "RUN_AS_UID=", "SYSTEMD_LOG_LEVEL=info")
	out = new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done = make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return cmd, out, done
}

// makeRootfs builds a minimal OS tree for systemd-nspawn: static busybox plus
// os-release (nspawn refuses a tree without it).
func makeRootfs(t *testing.T) string {
	t.Helper()
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal("busybox not installed: run `make deps` (busybox-static)")
	}
	if out, err := exec.Command("file", "-L", busybox).Output(); err == nil && !bytes.Contains(out, []byte("statically linked")) {
		t.Fatalf("%s is not static: install busybox-static", busybox)
	}
	root, err := os.MkdirTemp("/tmp", "machined-rootfs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	os.Chmod(root, 0o755)
	for _, d := range []string{"bin", "sbin", "etc", "usr/lib", "proc", "sys", "dev", "tmp", "run", "var", "root"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "sleep", "ip", "cat", "ls", "id"} {
		os.Symlink("busybox", filepath.Join(root, "bin", a))
	}
	files := map[string]string{
		"usr/lib/os-release": "NAME=\"TestBox\"\nID=testbox\nVERSION_ID=1\nPRETTY_NAME=\"TestBox busybox root\"\n",
		"etc/passwd":         "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":          "root:x:0:\n",
		"etc/machine-id":     "",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("../usr/lib/os-release", filepath.Join(root, "etc/os-release"))
	return root
}

// signalWatch collects MachineNew/MachineRemoved seen by a Go client.
type signalWatch struct {
	t  *testing.T
	ch chan *dbus.Signal
}

func watchSignals(t *testing.T, bus *privateBus) *signalWatch {
	t.Helper()
	c := dbusConn(t, bus)
	if err := c.AddMatchSignal(dbus.WithMatchSender(m1Dest), dbus.WithMatchObjectPath(m1Path), dbus.WithMatchInterface(m1Manager)); err != nil {
		t.Fatal(err)
	}
	w := &signalWatch{t: t, ch: make(chan *dbus.Signal, 256)}
	c.Signal(w.ch)
	return w
}

// wait returns once member(name, path) arrived; other signals are skipped.
func (w *signalWatch) wait(member, name string) {
	w.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case s := <-w.ch:
			if s.Name == m1Manager+"."+member && len(s.Body) == 2 && s.Body[0] == name {
				if want := dbus.ObjectPath(m1Path + "/machine/" + escapeLabel(name)); s.Body[1] != want {
					w.t.Fatalf("%s(%s) carries path %v, want %s", member, name, s.Body[1], want)
				}
				return
			}
		case <-timeout:
			w.t.Fatalf("no %s signal for %s", member, name)
		}
	}
}

// escapeLabel is bus_label_escape, written again here so the tests do not
// trust the code they test.
func escapeLabel(s string) string {
	if s == "" {
		return "_"
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "_%02x", c)
		}
	}
	return b.String()
}
