package tests

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/godbus/dbus/v5"
)

// noSystemdEnv points the daemon's test for a running systemd at a directory
// that does not exist.
func noSystemdEnv(runtimeDir string) string {
	return "MACHINED_SYSTEMD_SYSTEM_DIR=" + filepath.Join(runtimeDir, "no-systemd")
}

// systemdHostEnv makes the daemon believe systemd runs, with the system bus
// being bus.
func systemdHostEnv(t *testing.T, bus *privateBus) []string {
	marker := t.TempDir()
	return []string{"MACHINED_SYSTEMD_SYSTEM_DIR=" + marker, "DBUS_SYSTEM_BUS_ADDRESS=" + bus.addr}
}

// On a systemd host, --units auto asks systemd on the system bus even when the
// shim serves no bus at all (--bus none): scopes are never made behind
// systemd's back.
func TestUnitsFollowHostSystemd(t *testing.T) {
	needRoot(t)
	bus := startPrivateBus(t)
	fake, err := dbus.Connect(bus.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	if r, err := fake.RequestName("org.freedesktop.systemd1", dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own org.freedesktop.systemd1: %v %v", r, err)
	}
	d := &daemon{t: t, dir: newRuntimeDir(t)}
	d.args = []string{"--runtime-dir", d.dir, "--bus", "none", "--units", "auto", "--userdb-dir", "none"}
	d.env = systemdHostEnv(t, bus)
	d.start()
	defer d.stop(syscall.SIGTERM)
	if b, _ := os.ReadFile(filepath.Join(d.dir, "daemon.log")); !strings.Contains(string(b), `units="systemd"`) {
		t.Fatalf("--units auto on a systemd host did not pick systemd:\n%s", b)
	}
}

// On a systemd host whose systemd is not on the system bus, --units auto
// refuses to start; --units cgroup overrides.
func TestUnitsRefuseUnreachableSystemd(t *testing.T) {
	needCgroup2(t)
	bus := startPrivateBus(t)
	dir := newRuntimeDir(t)
	cmd := exec.Command(daemonBin, "--runtime-dir", dir, "--bus", "none", "--units", "auto", "--userdb-dir", "none")
	cmd.Env = append(os.Environ(), systemdHostEnv(t, bus)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Either the daemon exits, or (the fault) it serves.
	var exitErr error
	served := false
	eventually(t, "the daemon exits or serves", func() bool {
		select {
		case exitErr = <-exited:
			return true
		default:
		}
		served = answers(filepath.Join(dir, "systemd", "machine", "io.systemd.Machine"))
		return served
	})
	if served {
		cmd.Process.Kill()
		<-exited
		t.Fatal("the daemon started on a systemd host without reaching systemd")
	}
	if exitErr == nil || !strings.Contains(stderr.String(), "--units cgroup or --units none overrides") {
		t.Fatalf("exit %v, stderr %q", exitErr, stderr.String())
	}

	d := &daemon{t: t, dir: dir}
	d.args = []string{"--runtime-dir", dir, "--bus", "none", "--units", "cgroup", "--userdb-dir", "none"}
	d.env = systemdHostEnv(t, bus)
	d.start()
	defer d.stop(syscall.SIGTERM)
	if b, _ := os.ReadFile(filepath.Join(d.dir, "daemon.log")); !strings.Contains(string(b), `units="cgroup"`) {
		t.Fatalf("--units cgroup was not honoured on a systemd host:\n%s", b)
	}
}

// answers reports whether a Varlink socket accepts connections.
func answers(path string) bool {
	c, err := net.Dial("unix", path)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
