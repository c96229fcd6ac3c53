package machine1

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/machined-go/machined/service"
)

// A per-user instance answers only its own user and root on the bus: another
// user gets AccessDenied for every method and property, while Peer stays
// open as on every path. The system instance answers that user.
func TestUserScopeAdmitsOnlyItsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to call as another user")
	}
	busctlAs := func(e *env, uid uint32, args ...string) (string, error) {
		cmd := exec.Command("busctl", append([]string{"--address=" + e.addr}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	list := []string{"call", BusName, string(managerPath), managerIface, "ListMachines"}
	user := newEnvConfig(t, service.Config{UserScope: true})
	if c := user.manager("ListMachines"); c.Err != nil {
		t.Errorf("root (our own uid here): %v", c.Err)
	}
	for _, args := range [][]string{list, {"get-property", BusName, string(managerPath), managerIface, "PoolPath"}} {
		out, err := busctlAs(user, 65534, args...)
		if err == nil || !strings.Contains(out, "ccess denied") && !strings.Contains(out, "AccessDenied") {
			t.Errorf("uid 65534 %s: %v %q, want AccessDenied", args[0], err, out)
		}
	}
	if out, err := busctlAs(user, 65534, "call", BusName, string(managerPath), "org.freedesktop.DBus.Peer", "Ping"); err != nil {
		t.Errorf("uid 65534 Ping: %v %q", err, out)
	}
	// There is no .host in a per-user instance; the host's ID is still known.
	want, _ := os.ReadFile("/etc/machine-id")
	var id string
	if err := user.call("/", peerIface+".GetMachineId").Store(&id); err != nil || len(id) != 32 || id != strings.TrimSpace(string(want)) {
		t.Errorf("GetMachineId in a per-user instance: %q %v, want %q", id, err, want)
	}

	system := newEnv(t)
	if out, err := busctlAs(system, 65534, list...); err != nil {
		t.Errorf("system instance, uid 65534: %v %q", err, out)
	}
}
