package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/machined-go/machined/internal/bustest"
)

// startPolkitd runs the real polkitd on the private bus with rules and our
// packaged action file. It must run before the daemon, which looks for polkit
// when it starts.
func startPolkitd(t *testing.T, bus *privateBus, rules string) {
	t.Helper()
	bustest.StartPolkitd(t, bus.Bus, rules, "../packaging/org.freedesktop.machine1.policy")
}

// For nobody: terminating is granted, unregistering refused, killing left to
// the default (auth_admin: a password nobody can give here).
const polkitTestRules = `polkit.addRule(function(action, subject) {
  if (subject.user != "nobody" || action.id != "org.freedesktop.machine1.manage-machines") { return polkit.Result.NOT_HANDLED; }
  if (action.lookup("verb") == "terminate") { return polkit.Result.YES; }
  if (action.lookup("verb") == "unregister") { return polkit.Result.NO; }
  return polkit.Result.NOT_HANDLED;
});
`

// With polkitd on the bus, the core asks it about unprivileged callers of
// both transports: D-Bus callers by bus name, Varlink callers by process.
func TestPolkit(t *testing.T) {
	needRoot(t)
	bus := startPrivateBus(t)
	startPolkitd(t, bus, polkitTestRules)
	d := startDaemon(t, "--bus", bus.addr, "--units", "none")
	waitBusName(t, bus)
	if b, _ := os.ReadFile(filepath.Join(d.dir, "daemon.log")); !strings.Contains(string(b), "asking polkit") {
		t.Fatalf("daemon did not find polkit:\n%s", b)
	}
	boxes := map[string]*leader{}
	for _, n := range []string{"pk-1", "pk-2", "pk-3", "pk-4"} {
		boxes[n] = spawnLeader(t)
		register(t, d, n, boxes[n].pid)
	}
	dbusSend := func(member string, args ...string) (string, int) {
		t.Helper()
		_, errOut, code := run(t, nil, nobody, "dbus-send", append([]string{"--bus=" + bus.addr, "--print-reply", "--dest=" + m1Dest, m1Path, m1Manager + "." + member}, args...)...)
		return errOut, code
	}

	// D-Bus: granted by the rule.
	if _, errOut, code := busctl(t, bus, nobody, "call", m1Dest, m1Path, m1Manager, "TerminateMachine", "s", "pk-1"); code != 0 {
		t.Fatalf("polkit-granted TerminateMachine: %s", errOut)
	}
	eventually(t, "pk-1 terminated", func() bool { return gone(t, d, "pk-1") })
	// D-Bus: refused by the rule.
	if errOut, code := dbusSend("UnregisterMachine", "string:pk-2"); code == 0 || !strings.Contains(errOut, "org.freedesktop.DBus.Error.AccessDenied") {
		t.Errorf("polkit-refused UnregisterMachine: %d %s", code, errOut)
	}
	// D-Bus: polkit wants authentication; dbus-send does not allow interaction.
	if errOut, code := dbusSend("KillMachine", "string:pk-2", "string:all", "int32:9"); code == 0 || !strings.Contains(errOut, "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired") {
		t.Errorf("KillMachine needing authentication: %d %s", code, errOut)
	}

	// Varlink: the same rules, subject unix-process.
	vcall := func(method, params string) (string, int) {
		_, errOut, code := varlinkctlAs(t, nobody, "call", d.sock(), "io.systemd.Machine."+method, params)
		return errOut, code
	}
	if errOut, code := vcall("Terminate", `{"name":"pk-3"}`); code != 0 {
		t.Errorf("Varlink Terminate granted by polkit: %s", errOut)
	}
	eventually(t, "pk-3 terminated", func() bool { return gone(t, d, "pk-3") })
	if errOut, code := vcall("Unregister", `{"name":"pk-4"}`); code == 0 || !strings.Contains(errOut, "PermissionDenied") {
		t.Errorf("Varlink Unregister refused by polkit: %d %s", code, errOut)
	}
	if errOut, code := vcall("Kill", `{"name":"pk-4","signal":9,"allowInteractiveAuthentication":true}`); code == 0 || !strings.Contains(errOut, "io.systemd.InteractiveAuthenticationRequired") {
		t.Errorf("Varlink Kill needing authentication: %d %s", code, errOut)
	}
	for _, n := range []string{"pk-2", "pk-4"} {
		if gone(t, d, n) || !syscallAlive(boxes[n].pid) {
			t.Errorf("%s harmed", n)
		}
	}
}
