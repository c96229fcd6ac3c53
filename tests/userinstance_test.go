package tests

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The per-user instance's user and a second, unrelated user.
const (
	instanceUID = 65534
	otherUID    = 65533
)

var (
	asInstanceUser = &syscall.Credential{Uid: instanceUID, Gid: instanceUID}
	asOtherUser    = &syscall.Credential{Uid: otherUID, Gid: otherUID}
)

// userInstance is machined --user running as instanceUID, with a runtime
// directory of its own and a private session bus there.
type userInstance struct {
	dir, bus string
	daemon   *exec.Cmd
}

func (u *userInstance) sock() string {
	return filepath.Join(u.dir, "systemd", "machine", "io.systemd.Machine")
}

// env is the user's session environment.
func (u *userInstance) env() []string {
	return []string{"XDG_RUNTIME_DIR=" + u.dir, "DBUS_SESSION_BUS_ADDRESS=" + u.bus}
}

func startUserInstance(t *testing.T) *userInstance {
	t.Helper()
	needRoot(t)
	dir, err := os.MkdirTemp("/tmp", "machined-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, instanceUID, instanceUID); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o700)
	u := &userInstance{dir: dir, bus: "unix:path=" + filepath.Join(dir, "bus")}

	bus := exec.Command("dbus-daemon", "--session", "--nofork", "--address="+u.bus, "--print-address=1")
	bus.SysProcAttr = &syscall.SysProcAttr{Credential: asInstanceUser}
	out, err := bus.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Start(); err != nil {
		t.Fatalf("session dbus-daemon: %v", err)
	}
	t.Cleanup(func() { bus.Process.Kill(); bus.Wait() })
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatalf("session dbus-daemon did not start: %v", err)
	}

	u.daemon = exec.Command(daemonBin, "--user", "--log-level", "debug")
	u.daemon.Env = append(os.Environ(), u.env()...)
	u.daemon.SysProcAttr = &syscall.SysProcAttr{Credential: asInstanceUser}
	startLogged(t, u.daemon, filepath.Join(t.TempDir(), "daemon.log"), "user instance")
	eventually(t, "the user instance serves", func() bool {
		_, _, code := varlinkctlAs(t, asInstanceUser, "info", u.sock())
		return code == 0
	})
	return u
}

// busctlUser runs busctl --user in the instance user's session.
func (u *userInstance) busctlUser(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return run(t, u.env(), asInstanceUser, "busctl", append([]string{"--user"}, args...)...)
}

// A per-user instance keeps everything under $XDG_RUNTIME_DIR: its socket
// (mode 0600, the user's, with the MachineImage name and the Varlink registry
// entries beside it) and its state; it has no userdb or resolver hook socket
// and no .host. Its user registers, lists and terminates a machine of its own
// over Varlink, and sees it on the user bus with busctl --user.
func TestUserInstanceServesItsUser(t *testing.T) {
	u := startUserInstance(t)
	st, err := os.Stat(u.sock())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Sys().(*syscall.Stat_t).Uid != instanceUID {
		t.Errorf("socket mode %v uid %d, want 0600 and %d", st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Uid, instanceUID)
	}
	for _, link := range []string{
		filepath.Join(u.dir, "systemd", "machine", "io.systemd.MachineImage"),
		filepath.Join(u.dir, "varlink", "registry", "io.systemd.Machine"),
		filepath.Join(u.dir, "varlink", "registry", "io.systemd.MachineImage"),
	} {
		if target, err := os.Readlink(link); err != nil || target != u.sock() {
			t.Errorf("%s -> %q %v, want the machine socket", link, target, err)
		}
	}
	for _, absent := range []string{"systemd/userdb", "systemd/resolve.hook"} {
		if _, err := os.Lstat(filepath.Join(u.dir, absent)); !os.IsNotExist(err) {
			t.Errorf("%s exists in a per-user instance: %v", absent, err)
		}
	}

	l := spawnLeaderWith(t, &syscall.SysProcAttr{Credential: asInstanceUser})
	req := `{"name":"mine","class":"container","leader":` + strconv.Itoa(l.pid) + `}`
	if out, errOut, code := varlinkctlAs(t, asInstanceUser, "call", u.sock(), "io.systemd.Machine.Register", req); code != 0 {
		t.Fatalf("Register as the instance's user: %s %s", out, errOut)
	}
	if _, err := os.Stat(filepath.Join(u.dir, "systemd", "machines", "mine")); err != nil {
		t.Errorf("state file: %v", err)
	}
	out, errOut, code := varlinkctlAs(t, asInstanceUser, "call", "--more", "-j", u.sock(), "io.systemd.Machine.List", "{}")
	if code != 0 {
		t.Fatalf("List: %s %s", out, errOut)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m struct{ Name string }
		if err := json.Unmarshal([]byte(strings.Trim(line, "\x1e")), &m); err != nil {
			t.Fatalf("List reply %q: %v", line, err)
		}
		names = append(names, m.Name)
	}
	if strings.Join(names, " ") != "mine" {
		t.Errorf("List shows %v, want only mine (no .host)", names)
	}
	out, errOut, code = u.busctlUser(t, "call", "org.freedesktop.machine1", "/org/freedesktop/machine1", "org.freedesktop.machine1.Manager", "ListMachines")
	if code != 0 || !strings.Contains(out, `"mine" "container"`) || strings.Contains(out, ".host") {
		t.Errorf("busctl --user ListMachines: %q %s", out, errOut)
	}
	if out, errOut, code := varlinkctlAs(t, asInstanceUser, "call", u.sock(), "io.systemd.Machine.Terminate", `{"name":"mine"}`); code != 0 {
		t.Fatalf("Terminate: %s %s", out, errOut)
	}
	// The machine goes when its leader has exited (a zombie of ours until
	// the test reaps it).
	eventually(t, "the machine is gone", func() bool {
		_, err := os.Stat(filepath.Join(u.dir, "systemd", "machines", "mine"))
		return os.IsNotExist(err)
	})
	if out, errOut, code := varlinkctlAs(t, asInstanceUser, "call", u.sock(), "io.systemd.Machine.List", `{"name":"mine"}`); code == 0 || !strings.Contains(errOut, "NoSuchMachine") {
		t.Errorf("List after Terminate: %q %q", out, errOut)
	}
}

// Nobody but the instance's user is served: another user is refused on its
// first call even when the socket is made reachable to all (a socket unit
// with another SocketMode=, a runtime directory opened up), and root, who
// may look, may not register machines there. Root's system instance serves
// everyone as before and does not see the user's machines.
func TestUserInstanceRefusesOtherUsers(t *testing.T) {
	u := startUserInstance(t)
	l := spawnLeaderWith(t, &syscall.SysProcAttr{Credential: asInstanceUser})
	req := `{"name":"mine","class":"container","leader":` + strconv.Itoa(l.pid) + `}`
	if out, errOut, code := varlinkctlAs(t, asInstanceUser, "call", u.sock(), "io.systemd.Machine.Register", req); code != 0 {
		t.Fatalf("Register as the instance's user: %s %s", out, errOut)
	}

	os.Chmod(u.dir, 0o755)
	os.Chmod(u.sock(), 0o666)
	for _, method := range []string{"io.systemd.Machine.List", "io.systemd.Machine.Register"} {
		params := `{"name":"mine"}`
		if strings.HasSuffix(method, "Register") {
			other := spawnLeaderWith(t, &syscall.SysProcAttr{Credential: asOtherUser})
			params = `{"name":"theirs","class":"container","leader":` + strconv.Itoa(other.pid) + `}`
		}
		out, errOut, code := varlinkctlAs(t, asOtherUser, "call", u.sock(), method, params)
		if code == 0 || !strings.Contains(errOut, "org.varlink.service.PermissionDenied") {
			t.Errorf("uid %d %s: code %d %q %q, want PermissionDenied", otherUID, method, code, out, errOut)
		}
	}

	if out, errOut, code := varlinkctl(t, "call", u.sock(), "io.systemd.Machine.List", `{"name":"mine"}`); code != 0 {
		t.Errorf("root's List: %s %s", out, errOut)
	}
	rootLeader := spawnLeader(t)
	out, errOut, code := varlinkctl(t, "call", u.sock(), "io.systemd.Machine.Register", `{"name":"roots","class":"container","leader":`+strconv.Itoa(rootLeader.pid)+`}`)
	if code == 0 || !strings.Contains(errOut, "PermissionDenied") {
		t.Errorf("root's Register in a user instance: code %d %q %q, want PermissionDenied", code, out, errOut)
	}

	sys := startDaemon(t)
	if out, errOut, code := varlinkctlAs(t, asOtherUser, "call", "--more", sys.sock(), "io.systemd.Machine.List", "{}"); code != 0 || !strings.Contains(out, ".host") || strings.Contains(out, "mine") {
		t.Errorf("system instance for uid %d: code %d %q %q", otherUID, code, out, errOut)
	}
	if st, err := os.Stat(sys.sock()); err != nil || st.Mode().Perm() != 0o666 {
		t.Errorf("system socket: %v %v", st, err)
	}
}

// Socket-activated as systemd --user starts it (systemd-machined.socket), the
// per-user instance serves the handed-over socket and still refuses other
// users, whatever mode the socket unit gave the socket.
func TestUserInstanceSocketActivated(t *testing.T) {
	needRoot(t)
	dir, err := os.MkdirTemp("/tmp", "machined-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "systemd", "machine", "io.systemd.Machine")
	os.MkdirAll(filepath.Dir(path), 0o755)
	os.Chown(filepath.Join(dir, "systemd"), instanceUID, instanceUID)
	os.Chown(filepath.Dir(path), instanceUID, instanceUID)
	os.Chown(dir, instanceUID, instanceUID)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o666)
	f, _ := l.File()
	l.SetUnlinkOnClose(false)
	l.Close()
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, daemonBin, "--user", "--bus", "none")
	cmd.ExtraFiles = []*os.File{f}
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_FDNAMES=varlink", "XDG_RUNTIME_DIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: asInstanceUser}
	var logb strings.Builder
	cmd.Stdout, cmd.Stderr = &logb, &logb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("daemon log:\n%s", logb.String())
		}
	})
	// An empty registry answers List of a name NoSuchMachine, once it serves.
	eventually(t, "the activated socket serves the user", func() bool {
		_, errOut, _ := varlinkctlAs(t, asInstanceUser, "call", path, "io.systemd.Machine.List", `{"name":"none"}`)
		return strings.Contains(errOut, "NoSuchMachine")
	})
	if out, errOut, code := varlinkctlAs(t, asOtherUser, "call", path, "io.systemd.Machine.List", `{"name":"none"}`); code == 0 || !strings.Contains(errOut, "PermissionDenied") {
		t.Errorf("uid %d through a 0666 activated socket: %d %q %q, want PermissionDenied", otherUID, code, out, errOut)
	}
}
