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

// sessionUser is a user of the booted container with a user manager of its
// own.
type sessionUser struct {
	name string
	uid  int
}

// tester is the tree's user; tester2 is made by the test that needs it.
var (
	tester  = sessionUser{"tester", 1000}
	tester2 = sessionUser{"tester2", 1001}
)

func (u sessionUser) runtime() string { return fmt.Sprintf("/run/user/%d", u.uid) }

// cmd prefixes a command so that it runs as u, in u's session environment.
func (u sessionUser) cmd(args ...string) []string {
	id := strconv.Itoa(u.uid)
	return append([]string{"setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups", "--",
		"env", "XDG_RUNTIME_DIR=" + u.runtime(), "DBUS_SESSION_BUS_ADDRESS=unix:path=" + u.runtime() + "/bus", "HOME=/home/" + u.name}, args...)
}

// runAs runs a command in the container as u, in u's session.
func (c *bootedContainer) runAs(u sessionUser, args ...string) (string, string, int) {
	c.t.Helper()
	cmd := u.cmd(args...)
	return c.run(cmd[0], cmd[1:]...)
}

func (c *bootedContainer) mustRunAs(u sessionUser, args ...string) string {
	c.t.Helper()
	cmd := u.cmd(args...)
	return c.mustRun(cmd[0], cmd[1:]...)
}

// userUnitState is systemctl --user is-active of a unit of u's manager.
func (c *bootedContainer) userUnitState(u sessionUser, unit string) string {
	c.t.Helper()
	out, _, _ := c.runAs(u, "systemctl", "--user", "is-active", unit)
	return strings.TrimSpace(out)
}

// varlinkUserInstance runs the host's varlinkctl as uid in the container's
// PID namespace against owner's instance. Only root may follow
// /proc/LEADER/root (the container's PID 1 is root's), so root opens owner's
// runtime directory as fd 3 and the client, once it is uid, reaches the socket
// through /proc/self/fd/3: the socket's own mode is still checked.
func (c *bootedContainer) varlinkUserInstance(owner sessionUser, uid int, args ...string) (string, string, int) {
	c.t.Helper()
	dir := fmt.Sprintf("/proc/%d/root%s", c.Leader, owner.runtime())
	sock := "/proc/self/fd/3/systemd/machine/io.systemd.Machine"
	script := `exec 3<"$1" || exit 97; u=$2; shift 2; exec setpriv --reuid="$u" --regid="$u" --clear-groups -- "$@"`
	full := []string{"-t", strconv.Itoa(c.Leader), "-p", "--", "sh", "-c", script, "sh", dir, strconv.Itoa(uid), varlinkctlPath(c.t), args[0], sock}
	return run(c.t, nil, nil, "nsenter", append(full, args[1:]...)...)
}

// userMachine is List of one machine in owner's instance, as uid.
func (c *bootedContainer) userMachine(owner sessionUser, uid int, name string) listedMachine {
	c.t.Helper()
	out, errOut, code := c.varlinkUserInstance(owner, uid, "call", "io.systemd.Machine.List", fmt.Sprintf(`{"name":%q}`, name))
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

// userServiceLeader starts a command as a transient service of u's manager
// (systemd-run --user) and returns its PID in the container.
func (c *bootedContainer) userServiceLeader(u sessionUser, unit string, cmd ...string) int {
	c.t.Helper()
	c.mustRunAs(u, append([]string{"systemd-run", "--user", "--quiet", "--unit=" + unit, "--service-type=exec"}, cmd...)...)
	pid, _ := strconv.Atoi(strings.TrimSpace(c.mustRunAs(u, "systemctl", "--user", "show", "--property=MainPID", "--value", unit+".service")))
	if pid <= 0 {
		c.t.Fatalf("%s has no main PID", unit)
	}
	return pid
}

// bootWithUserInstance boots the tree with our daemon installed for a host
// (PREFIX=/usr/local: the system units and the user units) and sets up
// tester's instance.
func bootWithUserInstance(t *testing.T) *bootedContainer {
	t.Helper()
	c := bootWithOurDaemon(t, "POLKITACTIONSDIR=/usr/share/polkit-1/actions")
	t.Cleanup(func() {
		if t.Failed() {
			out, _, _ := c.run("journalctl", "--no-pager", "--output=short-monotonic", "_UID=1000")
			t.Logf("tester's journal:\n%s", out)
		}
	})
	c.enableUserInstance(tester)
	return c
}

// enableUserInstance starts u's user manager by lingering and enables the
// user socket as u, as README.md says.
func (c *bootedContainer) enableUserInstance(u sessionUser) {
	c.t.Helper()
	c.mustRun("loginctl", "enable-linger", u.name)
	eventually(c.t, u.name+"'s user manager and bus", func() bool {
		if s := c.unitState(fmt.Sprintf("user@%d.service", u.uid)); s != "active" {
			return false
		}
		_, _, code := c.run("test", "-S", u.runtime()+"/bus")
		return code == 0
	})
	c.mustRunAs(u, "systemctl", "--user", "daemon-reload")
	c.mustRunAs(u, "systemctl", "--user", "enable", "--now", "systemd-machined.socket")
}

// tester's instance from the installed user units: socket activation by
// tester's first varlinkctl call; a machine whose leader runs in a service of
// tester's manager takes that unit, GetMachineByPID finds it by the unit's
// other process, the socket's other names and the journal entry are there, it
// outlives a restart and Terminate stops its unit; a leader outside tester's
// manager has no unit; D-Bus activation by busctl --user.
func TestUserInstanceUnderUserManager(t *testing.T) {
	c := bootWithUserInstance(t)
	const svc = "systemd-machined.service"
	if s := c.userUnitState(tester, svc); s != "inactive" {
		t.Fatalf("user service %s before first use", s)
	}
	if s := c.unitState(svc); s != "inactive" {
		t.Fatalf("system service %s before first use", s)
	}

	// The first call starts tester's service, ours, from the user units.
	if out, errOut, code := c.varlinkUserInstance(tester, tester.uid, "info"); code != 0 || !strings.Contains(out, "machined-go") {
		t.Fatalf("varlinkctl info as tester: %d %s%s", code, out, errOut)
	}
	if s := c.userUnitState(tester, svc); s != "active" {
		t.Fatalf("user service %s after a Varlink call", s)
	}
	pid := strings.TrimSpace(c.mustRunAs(tester, "systemctl", "--user", "show", "--property=MainPID", "--value", svc))
	if exe := strings.TrimSpace(c.mustRun("readlink", "/proc/"+pid+"/exe")); exe != "/usr/local/lib/machined/machined" {
		t.Fatalf("the user service runs %q", exe)
	}
	if st := strings.TrimSpace(c.mustRun("stat", "-c", "%u %a", "/proc/"+pid)); st != "1000 555" {
		t.Errorf("the user service's process: owner and mode %q", st)
	}
	if s := c.unitState(svc); s != "inactive" {
		t.Errorf("the system service %s after tester's call", s)
	}
	// What tells the instance that its user's manager started it, and so
	// will be on the user bus (cmd/machined waits for it there).
	if env := c.mustRun("cat", "/proc/"+pid+"/environ"); !strings.Contains(env, "\x00MANAGERPID=") && !strings.HasPrefix(env, "MANAGERPID=") {
		t.Errorf("the user service has no MANAGERPID: %q", env)
	}

	// A machine of tester's: its leader runs in a service of tester's
	// manager, which is the machine's unit (not the system manager's
	// user@1000.service, a unit tester's manager does not know). The
	// service's other process belongs to the machine too.
	leader := c.userServiceLeader(tester, "lead-mine", "sh", "-c", "sleep infinity & exec sleep infinity")
	if out, errOut, code := c.varlinkUserInstance(tester, tester.uid, "call", "io.systemd.Machine.Register", fmt.Sprintf(`{"name":"mine","class":"container","service":"test","leader":%d}`, leader)); code != 0 {
		t.Fatalf("Register as tester: %d %s%s", code, out, errOut)
	}
	m := c.userMachine(tester, tester.uid, "mine")
	if m.Unit != "lead-mine.service" || m.Subgroup != "" || m.Leader.PID != leader {
		t.Errorf("mine: unit %q subgroup %q leader %d, want lead-mine.service, none, %d", m.Unit, m.Subgroup, m.Leader.PID, leader)
	}
	c.mustRun("test", "-f", tester.runtime()+"/systemd/machines/mine")
	if _, _, code := c.run("test", "-e", "/run/systemd/machines/mine"); code == 0 {
		t.Error("tester's machine has a state file of the system instance")
	}
	child := strings.TrimSpace(c.mustRun("pgrep", "-P", strconv.Itoa(leader), "sleep"))
	if out, errOut, code := c.runAs(tester, "busctl", "--user", "call", m1Dest, m1Path, m1Manager, "GetMachineByPID", "u", child); code != 0 || strings.TrimSpace(out) != `o "/org/freedesktop/machine1/machine/mine"` {
		t.Errorf("GetMachineByPID of the leader's unit's other process: %d %s%s", code, out, errOut)
	}
	c.userServiceLeader(tester, "lead-other", "sleep", "infinity")

	// The socket unit's other names, made by tester's manager.
	for _, link := range []string{"systemd/machine/io.systemd.MachineImage", "varlink/registry/io.systemd.Machine", "varlink/registry/io.systemd.MachineImage"} {
		if target := strings.TrimSpace(c.mustRun("readlink", tester.runtime()+"/"+link)); target != tester.runtime()+"/systemd/machine/io.systemd.Machine" {
			t.Errorf("%s links to %q", link, target)
		}
	}
	// The journal has the registration from tester's service, with
	// upstream's message id.
	eventually(t, "the journal entry of mine", func() bool {
		for _, e := range c.journalEntries("MESSAGE_ID=24d8d4452573402496068381a6312df2", "_UID=1000") {
			if e["NAME"] == "mine" && e["_SYSTEMD_USER_UNIT"] == svc && e["LEADER"] == strconv.Itoa(leader) {
				return true
			}
		}
		return false
	})

	// Machines outlive a restart of the user service (state under
	// $XDG_RUNTIME_DIR).
	c.mustRunAs(tester, "systemctl", "--user", "restart", svc)
	if m := c.userMachine(tester, tester.uid, "mine"); m.Unit != "lead-mine.service" || m.Leader.PID != leader {
		t.Errorf("mine after restart: unit %q leader %d", m.Unit, m.Leader.PID)
	}

	// Terminate stops the leader's unit in tester's manager.
	if out, errOut, code := c.varlinkUserInstance(tester, tester.uid, "call", "io.systemd.Machine.Terminate", `{"name":"mine"}`); code != 0 {
		t.Fatalf("Terminate as tester: %d %s%s", code, out, errOut)
	}
	eventually(t, "lead-mine.service stopped", func() bool {
		s := c.userUnitState(tester, "lead-mine.service")
		return s == "inactive" || s == "failed"
	})
	eventually(t, "mine gone", func() bool {
		_, _, code := c.varlinkUserInstance(tester, tester.uid, "call", "io.systemd.Machine.List", `{"name":"mine"}`)
		return code != 0
	})
	if s := c.userUnitState(tester, "lead-other.service"); s != "active" {
		t.Errorf("Terminate of mine stopped another unit of tester's: %s", s)
	}

	// A leader of tester's outside tester's manager (a system service running
	// as tester) is in no unit the manager knows: the machine has none, and
	// Terminate signals the leader itself rather than ask tester's manager
	// to stop a unit of the system's.
	c.mustRun("systemd-run", "--quiet", "--unit=lead-sys", "--uid=tester", "--gid=tester", "--service-type=exec", "sleep", "infinity")
	sysLeader, _ := strconv.Atoi(strings.TrimSpace(c.mustRun("systemctl", "show", "--property=MainPID", "--value", "lead-sys.service")))
	if out, errOut, code := c.varlinkUserInstance(tester, tester.uid, "call", "io.systemd.Machine.Register", fmt.Sprintf(`{"name":"outside","class":"container","leader":%d}`, sysLeader)); code != 0 {
		t.Fatalf("Register outside as tester: %d %s%s", code, out, errOut)
	}
	if m := c.userMachine(tester, tester.uid, "outside"); m.Unit != "" || m.Subgroup != "" {
		t.Errorf("outside: unit %q subgroup %q, want none", m.Unit, m.Subgroup)
	}
	if out, errOut, code := c.varlinkUserInstance(tester, tester.uid, "call", "io.systemd.Machine.Terminate", `{"name":"outside"}`); code != 0 {
		t.Fatalf("Terminate outside as tester: %d %s%s", code, out, errOut)
	}
	eventually(t, "outside's leader ended", func() bool {
		s := c.unitState("lead-sys.service")
		return s == "inactive" || s == "failed"
	})

	// D-Bus activation on the user bus: with socket and service stopped,
	// busctl --user starts the service through tester's manager.
	c.mustRunAs(tester, "systemctl", "--user", "stop", "systemd-machined.socket", svc)
	if s := c.userUnitState(tester, svc); s != "inactive" {
		t.Fatalf("user service %s after stop", s)
	}
	out := c.mustRunAs(tester, "busctl", "--user", "call", m1Dest, m1Path, m1Manager, "ListMachines")
	if strings.TrimSpace(out) != "a(ssso) 0" {
		t.Errorf("ListMachines on tester's bus: %q", out)
	}
	if s := c.userUnitState(tester, svc); s != "active" {
		t.Fatalf("user service %s after busctl --user", s)
	}
	c.mustRunAs(tester, "systemctl", "--user", "start", "systemd-machined.socket")
}

// allocateUnit and CreateMachine in tester's instance: tester's own manager
// makes machine-NAME.scope in its machine.slice (systemctl --user status),
// Kill whom=all signals the scope, Terminate stops it.
func TestUserInstanceScopes(t *testing.T) {
	c := bootWithUserInstance(t)
	// A leader that notes SIGUSR1 in tester's runtime directory.
	noter := func(unit string) int {
		return c.userServiceLeader(tester, unit, "sh", "-c", `trap 'echo got > `+tester.runtime()+`/`+unit+`.usr1' USR1; while :; do sleep 1; done`)
	}
	vl := noter("lead-vl")
	if out, errOut, code := c.varlinkUserInstance(tester, tester.uid, "call", "io.systemd.Machine.Register", fmt.Sprintf(`{"name":"vl","class":"container","service":"test","leader":%d,"allocateUnit":true}`, vl)); code != 0 {
		t.Fatalf("Register allocateUnit as tester: %d %s%s", code, out, errOut)
	}
	cm := noter("lead-cm")
	c.mustRunAs(tester, "busctl", "--user", "call", m1Dest, m1Path, m1Manager, "CreateMachine", "sayssusa(sv)", "cm", "0", "test", "container", strconv.Itoa(cm), "/", "0")
	for name, pid := range map[string]int{"vl": vl, "cm": cm} {
		scope := "machine-" + name + ".scope"
		if m := c.userMachine(tester, tester.uid, name); m.Unit != scope || m.Subgroup != "" {
			t.Errorf("%s: unit %q subgroup %q", name, m.Unit, m.Subgroup)
		}
		status := c.mustRunAs(tester, "systemctl", "--user", "status", "--lines=0", scope)
		if !strings.Contains(status, "Active: active (running)") || !strings.Contains(status, "─"+strconv.Itoa(pid)+" ") {
			t.Errorf("systemctl --user status %s:\n%s", scope, status)
		}
		if s := strings.TrimSpace(c.mustRunAs(tester, "systemctl", "--user", "show", "--property=Slice", "--value", scope)); s != "machine.slice" {
			t.Errorf("%s in slice %q", scope, s)
		}
		if cg := c.mustRun("cat", fmt.Sprintf("/proc/%d/cgroup", pid)); !strings.Contains(cg, "/user@1000.service/machine.slice/"+scope+"\n") {
			t.Errorf("leader of %s not in its scope of tester's manager: %s", name, cg)
		}
		if s := c.unitState(scope); s == "active" {
			t.Errorf("the system manager has %s", scope)
		}
	}

	// The scopes are still the machines' after a restart of the instance,
	// and it reaches tester's manager again for them.
	c.mustRunAs(tester, "systemctl", "--user", "restart", "systemd-machined.service")

	// Kill whom=all goes to the scope: the leader gets the signal and lives on.
	if out, errOut, code := c.varlinkUserInstance(tester, tester.uid, "call", "io.systemd.Machine.Kill", `{"name":"vl","whom":"all","signal":10}`); code != 0 {
		t.Fatalf("Kill all as tester: %d %s%s", code, out, errOut)
	}
	eventually(t, "SIGUSR1 at vl's leader", func() bool {
		_, _, code := c.run("test", "-e", tester.runtime()+"/lead-vl.usr1")
		return code == 0
	})
	if s := c.userUnitState(tester, "machine-vl.scope"); s != "active" {
		t.Errorf("SIGUSR1 ended vl's scope: %s", s)
	}

	// Terminate stops the scope, over either transport.
	if out, errOut, code := c.varlinkUserInstance(tester, tester.uid, "call", "io.systemd.Machine.Terminate", `{"name":"vl"}`); code != 0 {
		t.Fatalf("Terminate as tester: %d %s%s", code, out, errOut)
	}
	c.mustRunAs(tester, "busctl", "--user", "call", m1Dest, m1Path, m1Manager, "TerminateMachine", "s", "cm")
	for _, name := range []string{"vl", "cm"} {
		eventually(t, name+"'s scope stopped", func() bool {
			s := c.userUnitState(tester, "machine-"+name+".scope")
			return s == "inactive" || s == "failed"
		})
		eventually(t, name+" gone", func() bool {
			_, _, code := c.varlinkUserInstance(tester, tester.uid, "call", "io.systemd.Machine.List", fmt.Sprintf(`{"name":%q}`, name))
			return code != 0
		})
	}
}

// listNames is List --more in owner's instance as uid: the machine names.
func (c *bootedContainer) listNames(owner sessionUser, uid int) []string {
	c.t.Helper()
	out, errOut, code := c.varlinkUserInstance(owner, uid, "call", "--more", "io.systemd.Machine.List", "{}")
	if code != 0 && !strings.Contains(errOut, "NoSuchMachine") {
		c.t.Fatalf("List --more in %s's instance as uid %d: %d %s%s", owner.name, uid, code, out, errOut)
	}
	var names []string
	// --more prints a JSON sequence: each reply after a record separator.
	dec := json.NewDecoder(strings.NewReader(strings.ReplaceAll(out, "\x1e", "")))
	for dec.More() {
		var m listedMachine
		if err := dec.Decode(&m); err != nil {
			c.t.Fatalf("List --more: %v\n%s", err, out)
		}
		names = append(names, m.Name)
	}
	return names
}

// Instances side by side: root's system instance, tester's and tester2's each
// hold their own machines; root may look into tester's instance but not
// register there; tester2 reaches neither tester's socket nor tester's bus.
func TestUserInstanceOtherUsers(t *testing.T) {
	c := bootWithUserInstance(t)
	c.mustRun("useradd", "--create-home", "--uid", strconv.Itoa(tester2.uid), "--user-group", tester2.name)
	c.enableUserInstance(tester2)

	sysLeader := c.scopeLeader("lead-sys")
	c.registerMachine("sysm", sysLeader)
	for _, u := range []sessionUser{tester, tester2} {
		leader := c.userServiceLeader(u, "lead-"+u.name, "sleep", "infinity")
		if out, errOut, code := c.varlinkUserInstance(u, u.uid, "call", "io.systemd.Machine.Register", fmt.Sprintf(`{"name":"%sm","class":"container","leader":%d}`, u.name, leader)); code != 0 {
			t.Fatalf("Register as %s: %d %s%s", u.name, code, out, errOut)
		}
		c.mustRun("test", "-f", u.runtime()+"/systemd/machines/"+u.name+"m")
	}
	for _, u := range []sessionUser{tester, tester2} {
		if got := c.listNames(u, u.uid); len(got) != 1 || got[0] != u.name+"m" {
			t.Errorf("%s's instance lists %q", u.name, got)
		}
	}
	if got := c.machines(); !c.hasMachine("sysm") || c.hasMachine("testerm") || c.hasMachine("tester2m") {
		t.Errorf("the system instance lists:\n%s", got)
	}
	for _, name := range []string{"testerm", "tester2m"} {
		if _, _, code := c.run("test", "-e", "/run/systemd/machines/"+name); code == 0 {
			t.Errorf("%s has a state file of the system instance", name)
		}
	}

	// Root looks into tester's instance, and may not register there.
	if got := c.listNames(tester, 0); len(got) != 1 || got[0] != "testerm" {
		t.Errorf("root lists %q in tester's instance", got)
	}
	out, errOut, code := c.varlinkUserInstance(tester, 0, "call", "io.systemd.Machine.Register", fmt.Sprintf(`{"name":"rootm","class":"container","leader":%d}`, sysLeader))
	if code == 0 || !strings.Contains(errOut, "PermissionDenied") {
		t.Errorf("root's Register in tester's instance: %d %s%s", code, out, errOut)
	}

	// The user unit's socket is tester's alone; tester2 cannot connect to it,
	// nor to tester's bus.
	if st := strings.TrimSpace(c.mustRun("stat", "-c", "%U %a", tester.runtime()+"/systemd/machine/io.systemd.Machine")); st != "tester 600" {
		t.Errorf("tester's socket: owner and mode %q", st)
	}
	out, errOut, code = c.varlinkUserInstance(tester, tester2.uid, "call", "--more", "io.systemd.Machine.List", "{}")
	if code == 0 || strings.Contains(out, "testerm") || !strings.Contains(errOut, "ermission denied") {
		t.Errorf("tester2 called tester's instance: %d %s%s", code, out, errOut)
	}
	cmd := tester2.cmd("busctl", "--address=unix:path="+tester.runtime()+"/bus", "call", m1Dest, m1Path, m1Manager, "ListMachines")
	if out, errOut, code := c.run(cmd[0], cmd[1:]...); code == 0 || strings.Contains(out, "testerm") {
		t.Errorf("tester2 called tester's bus: %d %s%s", code, out, errOut)
	}
}
