package tests

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// The per-user instance installed as README.md says ("As a user service"),
// under a booted Debian 12: make install puts the user units in
// /usr/local/lib/systemd/user, lingering starts tester's own systemd --user
// (user@1000.service) with its user bus (dbus-user-session), and tester
// enables the socket with systemctl --user. The machines then live in
// tester's runtime directory and their scopes in tester's manager.

const (
	testerUID     = 1000
	testerRuntime = "/run/user/1000"
)

// testerEnv is the session environment of tester's commands.
var testerEnv = []string{
	"XDG_RUNTIME_DIR=" + testerRuntime,
	"DBUS_SESSION_BUS_ADDRESS=unix:path=" + testerRuntime + "/bus",
	"HOME=/home/tester",
}

// asTesterInSession is asTester with tester's session environment.
func asTesterInSession(args ...string) []string {
	return asTester(append(append([]string{"env"}, testerEnv...), args...)...)
}

// runAsTester runs a command in the container as tester, in its session.
func (c *bootedContainer) runAsTester(args ...string) (string, string, int) {
	c.t.Helper()
	cmd := asTesterInSession(args...)
	return c.run(cmd[0], cmd[1:]...)
}

func (c *bootedContainer) mustRunAsTester(args ...string) string {
	c.t.Helper()
	cmd := asTesterInSession(args...)
	return c.mustRun(cmd[0], cmd[1:]...)
}

// userUnitState is systemctl --user is-active of tester's unit.
func (c *bootedContainer) userUnitState(unit string) string {
	c.t.Helper()
	out, _, _ := c.runAsTester("systemctl", "--user", "is-active", unit)
	return strings.TrimSpace(out)
}

// varlinkUserInstance runs the host's varlinkctl as uid in the container's
// PID namespace against tester's instance. Only root may follow
// /proc/LEADER/root (the container's PID 1 is root's), so root opens tester's
// runtime directory as fd 3 and the client, once it is uid, reaches the socket
// through /proc/self/fd/3: the socket's own mode is still checked.
func (c *bootedContainer) varlinkUserInstance(uid int, args ...string) (string, string, int) {
	c.t.Helper()
	dir := fmt.Sprintf("/proc/%d/root%s", c.Leader, testerRuntime)
	sock := "/proc/self/fd/3/systemd/machine/io.systemd.Machine"
	script := `exec 3<"$1" || exit 97; u=$2; shift 2; exec setpriv --reuid="$u" --regid="$u" --clear-groups -- "$@"`
	full := []string{"-t", strconv.Itoa(c.Leader), "-p", "--", "sh", "-c", script, "sh", dir, strconv.Itoa(uid), varlinkctlPath(c.t), args[0], sock}
	return run(c.t, nil, nil, "nsenter", append(full, args[1:]...)...)
}

// userMachine is List of one machine in tester's instance, as uid.
func (c *bootedContainer) userMachine(uid int, name string) listedMachine {
	c.t.Helper()
	out, errOut, code := c.varlinkUserInstance(uid, "call", "io.systemd.Machine.List", fmt.Sprintf(`{"name":%q}`, name))
	if code != 0 {
		c.t.Fatalf("List %s as uid %d: %d %s%s", name, uid, code, out, errOut)
	}
	var m listedMachine
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		c.t.Fatalf("List %s: %v\n%s", name, err, out)
	}
	return m
}

// listedMachine is what these tests read of a List reply.
type listedMachine struct {
	Name     string `json:"name"`
	Unit     string `json:"unit"`
	Subgroup string `json:"subgroup"`
	Leader   struct {
		PID int `json:"pid"`
	} `json:"leader"`
}

// testerServiceLeader starts a command as a transient service of tester's
// manager (systemd-run --user) and returns its PID in the container.
func (c *bootedContainer) testerServiceLeader(unit string, cmd ...string) int {
	c.t.Helper()
	c.mustRunAsTester(append([]string{"systemd-run", "--user", "--quiet", "--unit=" + unit, "--service-type=exec"}, cmd...)...)
	pid, _ := strconv.Atoi(strings.TrimSpace(c.mustRunAsTester("systemctl", "--user", "show", "--property=MainPID", "--value", unit+".service")))
	if pid <= 0 {
		c.t.Fatalf("%s has no main PID", unit)
	}
	return pid
}

// bootWithUserInstance boots the tree with our daemon installed for a host
// (PREFIX=/usr/local: the system units and the user units), starts tester's
// user manager by lingering and enables the user socket as tester.
func bootWithUserInstance(t *testing.T) *bootedContainer {
	t.Helper()
	c := bootWithOurDaemon(t, "POLKITACTIONSDIR=/usr/share/polkit-1/actions")
	c.mustRun("loginctl", "enable-linger", "tester")
	eventually(t, "tester's user manager and bus", func() bool {
		if s := c.unitState("user@1000.service"); s != "active" {
			return false
		}
		_, _, code := c.run("test", "-S", testerRuntime+"/bus")
		return code == 0
	})
	c.mustRunAsTester("systemctl", "--user", "daemon-reload")
	c.mustRunAsTester("systemctl", "--user", "enable", "--now", "systemd-machined.socket")
	return c
}

// Socket activation, registration and the unit of a leader tester's manager
// runs, restart, Terminate; then D-Bus activation on tester's user bus.
func TestUserInstanceUnderUserManager(t *testing.T) {
	c := bootWithUserInstance(t)
	const svc = "systemd-machined.service"
	if s := c.userUnitState(svc); s != "inactive" {
		t.Fatalf("user service %s before first use", s)
	}
	if s := c.unitState(svc); s != "inactive" {
		t.Fatalf("system service %s before first use", s)
	}

	// The first call starts tester's service, ours, from the user units.
	if out, errOut, code := c.varlinkUserInstance(testerUID, "info"); code != 0 || !strings.Contains(out, "machined-go") {
		t.Fatalf("varlinkctl info as tester: %d %s%s", code, out, errOut)
	}
	if s := c.userUnitState(svc); s != "active" {
		t.Fatalf("user service %s after a Varlink call", s)
	}
	pid := strings.TrimSpace(c.mustRunAsTester("systemctl", "--user", "show", "--property=MainPID", "--value", svc))
	if exe := strings.TrimSpace(c.mustRun("readlink", "/proc/"+pid+"/exe")); exe != "/usr/local/lib/machined/machined" {
		t.Fatalf("the user service runs %q", exe)
	}
	if st := strings.TrimSpace(c.mustRun("stat", "-c", "%u %a", "/proc/"+pid)); st != "1000 555" {
		t.Errorf("the user service's process: owner and mode %q", st)
	}
	if s := c.unitState(svc); s != "inactive" {
		t.Errorf("the system service %s after tester's call", s)
	}

	// A machine of tester's: its leader runs in a service of tester's
	// manager, which is the machine's unit (not the system manager's
	// user@1000.service, a unit tester's manager does not know). The
	// service's other process belongs to the machine too.
	leader := c.testerServiceLeader("lead-mine", "sh", "-c", "sleep infinity & exec sleep infinity")
	if out, errOut, code := c.varlinkUserInstance(testerUID, "call", "io.systemd.Machine.Register", fmt.Sprintf(`{"name":"mine","class":"container","service":"test","leader":%d}`, leader)); code != 0 {
		t.Fatalf("Register as tester: %d %s%s", code, out, errOut)
	}
	m := c.userMachine(testerUID, "mine")
	if m.Unit != "lead-mine.service" || m.Subgroup != "" || m.Leader.PID != leader {
		t.Errorf("mine: unit %q subgroup %q leader %d, want lead-mine.service, none, %d", m.Unit, m.Subgroup, m.Leader.PID, leader)
	}
	c.mustRun("test", "-f", testerRuntime+"/systemd/machines/mine")
	if _, _, code := c.run("test", "-e", "/run/systemd/machines/mine"); code == 0 {
		t.Error("tester's machine has a state file of the system instance")
	}
	child := strings.TrimSpace(c.mustRun("pgrep", "-P", strconv.Itoa(leader), "sleep"))
	if out, errOut, code := c.runAsTester("busctl", "--user", "call", m1Dest, m1Path, m1Manager, "GetMachineByPID", "u", child); code != 0 || strings.TrimSpace(out) != `o "/org/freedesktop/machine1/machine/mine"` {
		t.Errorf("GetMachineByPID of the leader's unit's other process: %d %s%s", code, out, errOut)
	}
	c.testerServiceLeader("lead-other", "sleep", "infinity")

	// Machines outlive a restart of the user service (state under
	// $XDG_RUNTIME_DIR).
	c.mustRunAsTester("systemctl", "--user", "restart", svc)
	if out, errOut, code := c.varlinkUserInstance(testerUID, "call", "io.systemd.Machine.List", `{"name":"mine"}`); code != 0 {
		t.Errorf("List mine after restart: %d %s%s", code, out, errOut)
	}

	// Terminate stops the leader's unit in tester's manager.
	if out, errOut, code := c.varlinkUserInstance(testerUID, "call", "io.systemd.Machine.Terminate", `{"name":"mine"}`); code != 0 {
		t.Fatalf("Terminate as tester: %d %s%s", code, out, errOut)
	}
	eventually(t, "lead-mine.service stopped", func() bool {
		s := c.userUnitState("lead-mine.service")
		return s == "inactive" || s == "failed"
	})
	eventually(t, "mine gone", func() bool {
		_, _, code := c.varlinkUserInstance(testerUID, "call", "io.systemd.Machine.List", `{"name":"mine"}`)
		return code != 0
	})
	if s := c.userUnitState("lead-other.service"); s != "active" {
		t.Errorf("Terminate of mine stopped another unit of tester's: %s", s)
	}

	// D-Bus activation on the user bus: with socket and service stopped,
	// busctl --user starts the service through tester's manager.
	c.mustRunAsTester("systemctl", "--user", "stop", "systemd-machined.socket", svc)
	if s := c.userUnitState(svc); s != "inactive" {
		t.Fatalf("user service %s after stop", s)
	}
	out := c.mustRunAsTester("busctl", "--user", "call", m1Dest, m1Path, m1Manager, "ListMachines")
	if strings.TrimSpace(out) != "a(ssso) 0" {
		t.Errorf("ListMachines on tester's bus: %q", out)
	}
	if s := c.userUnitState(svc); s != "active" {
		t.Fatalf("user service %s after busctl --user", s)
	}
	c.mustRunAsTester("systemctl", "--user", "start", "systemd-machined.socket")
}
