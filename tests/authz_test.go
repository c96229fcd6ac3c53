package tests

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
)

var nobody = &syscall.Credential{Uid: 65534, Gid: 65534}

// An unprivileged caller may register only its own processes and manage only its
// own machines; listing and mapping are open to everyone.
func TestUnprivilegedCaller(t *testing.T) {
	needRoot(t)
	d := startDaemon(t)
	rootLeader := spawnLeader(t)
	register(t, d, "rootsbox", rootLeader.pid)

	call := func(method, params string) (string, string, int) {
		return varlinkctlAs(t, nobody, "call", "-j", d.sock(), "io.systemd.Machine."+method, params)
	}
	denied := func(method, params string) {
		t.Helper()
		out, errOut, code := call(method, params)
		if code == 0 || !strings.Contains(errOut, "org.varlink.service.PermissionDenied") {
			t.Errorf("%s %s as nobody: exit %d %s %s", method, params, code, out, errOut)
		}
	}
	denied("Register", fmt.Sprintf(`{"name":"stolen","class":"container","leader":%d}`, rootLeader.pid))
	denied("Unregister", `{"name":"rootsbox"}`)
	denied("Terminate", `{"name":"rootsbox"}`)
	denied("Kill", `{"name":"rootsbox","signal":9}`)
	if out, errOut, code := varlinkctlAs(t, nobody, "call", d.sock(), "io.systemd.service.SetLogLevel", `{"level":7}`); code == 0 || !strings.Contains(errOut, "PermissionDenied") {
		t.Errorf("SetLogLevel as nobody: %d %s %s", code, out, errOut)
	}
	if _, errOut, code := varlinkctlAs(t, nobody, "call", "--more", d.sock(), "io.systemd.Machine.List", `{}`); code != 0 {
		t.Errorf("List as nobody: %s", errOut)
	}
	if _, err := getOne(t, d, "rootsbox"); err != nil {
		t.Fatalf("root's machine disturbed: %v", err)
	}

	// nobody's own leader.
	own := spawnLeaderWith(t, &syscall.SysProcAttr{Credential: nobody})
	if out, errOut, code := call("Register", fmt.Sprintf(`{"name":"mine","class":"container","leader":%d}`, own.pid)); code != 0 {
		t.Fatalf("nobody registering its own leader: %s %s", out, errOut)
	}
	m, err := getOne(t, d, "mine")
	if err != nil || m.UID == nil || *m.UID != 65534 {
		t.Fatalf("nobody's machine: %+v %v", m, err)
	}
	if _, errOut, code := call("Unregister", `{"name":"mine"}`); code != 0 {
		t.Errorf("owner could not unregister: %s", errOut)
	}
}
