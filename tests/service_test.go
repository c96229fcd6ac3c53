package tests

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// varlinkctl info/introspect see the interfaces and IDL upstream serves.
func TestServiceInterfaces(t *testing.T) {
	d := startDaemon(t, "--units", "none")
	out, errOut, code := varlinkctl(t, "info", d.sock())
	if code != 0 {
		t.Fatalf("info: %s", errOut)
	}
	for _, iface := range []string{"io.systemd", "io.systemd.Machine", "io.systemd.service", "org.varlink.service"} {
		if !strings.Contains(out, iface) {
			t.Errorf("info lacks %s:\n%s", iface, out)
		}
	}
	out, errOut, code = varlinkctl(t, "introspect", d.sock(), "io.systemd.Machine")
	if code != 0 {
		t.Fatalf("introspect: %s", errOut)
	}
	for _, want := range []string{"method Register(", "method List(", "UIDShift: ?int", "OSRelease: ?[]string", "error NoSuchMachine", "error GroupInHostRange"} {
		if !strings.Contains(out, want) {
			t.Errorf("introspection lacks %q", want)
		}
	}
	if _, errOut, code := varlinkctl(t, "call", d.sock(), "io.systemd.service.Ping", "{}"); code != 0 {
		t.Errorf("Ping: %s", errOut)
	}
	if os.Geteuid() == 0 {
		if _, errOut, code := varlinkctl(t, "call", d.sock(), "io.systemd.service.SetLogLevel", `{"level":4}`); code != 0 {
			t.Errorf("SetLogLevel: %s", errOut)
		}
		out, _, _ = varlinkctl(t, "call", "-j", d.sock(), "io.systemd.service.GetLogLevel", "{}")
		if !strings.Contains(out, `"level":4`) {
			t.Errorf("GetLogLevel after SetLogLevel 4: %s", out)
		}
	}
	_, errOut, code = varlinkctl(t, "call", d.sock(), "io.systemd.service.Reload", "{}")
	if code == 0 || !strings.Contains(errOut, "MethodNotFound") {
		t.Errorf("Reload: %d %s", code, errOut)
	}
}

// READY=1 reaches $NOTIFY_SOCKET once the socket serves.
func TestNotifyReady(t *testing.T) {
	d := &daemon{t: t, dir: newRuntimeDir(t)}
	ns := filepath.Join(d.dir, "notify")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: ns, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	d.env = []string{"NOTIFY_SOCKET=" + ns}
	d.args = []string{"--runtime-dir", d.dir, "--bus", "none", "--units", "none"}
	d.start()
	defer d.stop(15)
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, _, err := pc.ReadFromUnix(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "READY=1") {
		t.Fatalf("notify: %q %v", buf[:n], err)
	}
}

// A socket handed over with LISTEN_FDS (systemd-machined.socket) is used instead of our own.
func TestSocketActivation(t *testing.T) {
	dir := newRuntimeDir(t)
	path := filepath.Join(dir, "activated.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := l.File()
	l.SetUnlinkOnClose(false) // the daemon keeps serving this path
	l.Close()
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, daemonBin, "--runtime-dir", dir, "--bus", "none", "--units", "none")
	cmd.ExtraFiles = []*os.File{f}
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_FDNAMES=varlink")
	logf, _ := os.Create(filepath.Join(dir, "daemon.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	f.Close()
	var out string
	eventually(t, "activated socket answers", func() bool {
		o, _, code := varlinkctl(t, "call", "-j", path, "io.systemd.Machine.List", `{"name":".host"}`)
		out = o
		return code == 0
	})
	if !strings.Contains(out, `".host"`) {
		t.Errorf("List over activated socket: %s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "systemd", "machine", "io.systemd.Machine")); err == nil {
		t.Error("daemon bound its own socket although one was handed over")
	}
	// The socket unit's Symlinks= makes the other names of a handed-over socket.
	if _, err := os.Lstat(filepath.Join(dir, "varlink", "registry", "io.systemd.Machine")); !os.IsNotExist(err) {
		t.Errorf("daemon linked a socket it did not bind: %v", err)
	}
}
