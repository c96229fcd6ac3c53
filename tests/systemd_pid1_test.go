package tests

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Our daemon as the system service of a booted Debian 12, in place of its
// systemd-machined, under the container's own systemd as PID 1 and driven by
// the container's own clients (systemctl, machinectl, busctl, systemd-run,
// journalctl). The container has no varlinkctl (systemd 252 lacks it): the
// host's runs in the container's PID namespace and reaches the socket
// through the container's root.

// bootWithOurDaemon boots the tree and installs our daemon in it as README.md
// says: make install (PREFIX=/usr, in place of the distribution's files, as
// a package would, unless makeArgs say otherwise), then systemctl
// daemon-reload, a reload of the bus for the new policy and activation file,
// and the socket enabled.
func bootWithOurDaemon(t *testing.T, makeArgs ...string) *bootedContainer {
	t.Helper()
	c := bootContainer(t, bootOpts{})
	if len(makeArgs) == 0 {
		makeArgs = []string{"PREFIX=/usr"}
	}
	c.make(append([]string{"install"}, makeArgs...)...)
	c.mustRun("systemctl", "daemon-reload")
	c.mustRun("systemctl", "reload", "dbus.service")
	c.mustRun("systemctl", "enable", "--now", "systemd-machined.socket")
	return c
}

// make runs a target of our Makefile with DESTDIR the container's root.
func (c *bootedContainer) make(args ...string) {
	c.t.Helper()
	bin := filepath.Join(c.t.TempDir(), "machined")
	if out, err := exec.Command("make", append([]string{"-s", "-C", "..", "DESTDIR=" + c.Root, "BIN=" + bin}, args...)...).CombinedOutput(); err != nil {
		c.t.Fatalf("make %v into the container: %v\n%s", args, err, out)
	}
}

// varlinkIn calls our daemon's Varlink socket in the container with the
// host's varlinkctl, run in the container's PID namespace so that the daemon
// sees the caller as one of its own processes.
func (c *bootedContainer) varlinkIn(args ...string) (string, string, int) {
	c.t.Helper()
	sock := fmt.Sprintf("/proc/%d/root/run/systemd/machine/io.systemd.Machine", c.Leader)
	full := []string{"-t", strconv.Itoa(c.Leader), "-p", "--", varlinkctlPath(c.t)}
	if len(args) > 0 && args[0] == "info" {
		full = append(full, "info", sock)
	} else {
		full = append(append(full, args[0], sock), args[1:]...)
	}
	return run(c.t, nil, nil, "nsenter", full...)
}

// scopeLeader starts `sleep infinity` in a new scope of the container's
// systemd (systemd-run --scope) and returns its PID in the container.
func (c *bootedContainer) scopeLeader(unit string) int {
	c.t.Helper()
	pidFile := "/run/" + unit + ".pid"
	c.mustRun("sh", "-c", "sh -c 'echo $$ > "+pidFile+"; exec systemd-run --quiet --scope --unit="+unit+" sleep infinity' >/dev/null 2>&1 </dev/null &")
	var pid int
	eventually(c.t, unit+" active", func() bool {
		out, _, _ := c.run("systemctl", "is-active", unit+".scope")
		if strings.TrimSpace(out) != "active" {
			return false
		}
		b, _, _ := c.run("cat", pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(b))
		return pid > 0
	})
	return pid
}

// serviceLeader starts a command as a transient service of the container's
// systemd and returns its main PID in the container.
func (c *bootedContainer) serviceLeader(unit string, cmd ...string) int {
	c.t.Helper()
	c.mustRun("systemd-run", append([]string{"--quiet", "--unit=" + unit, "--service-type=exec"}, cmd...)...)
	pid, _ := strconv.Atoi(strings.TrimSpace(c.mustRun("systemctl", "show", "--property=MainPID", "--value", unit+".service")))
	if pid <= 0 {
		c.t.Fatalf("%s has no main PID", unit)
	}
	return pid
}

func (c *bootedContainer) unitState(unit string) string {
	c.t.Helper()
	out, _, _ := c.run("systemctl", "is-active", unit)
	return strings.TrimSpace(out)
}

func (c *bootedContainer) machineProp(name, prop string) string {
	c.t.Helper()
	return strings.TrimSpace(c.mustRun("machinectl", "show", "--property="+prop, "--value", name))
}

func (c *bootedContainer) machines() string {
	c.t.Helper()
	return c.mustRun("machinectl", "list", "--no-legend")
}

// hasMachine reports whether machinectl list shows the machine.
func (c *bootedContainer) hasMachine(name string) bool {
	c.t.Helper()
	for _, line := range strings.Split(c.machines(), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return true
		}
	}
	return false
}

// registerMachine registers a machine over D-Bus with the container's busctl
// (RegisterMachine: the machine takes its leader's unit).
func (c *bootedContainer) registerMachine(name string, leader int) {
	c.t.Helper()
	c.mustRun("busctl", "call", m1Dest, m1Path, m1Manager, "RegisterMachine", "sayssus", name, "0", "test", "container", strconv.Itoa(leader), "/")
}

// Activation and readiness under systemd, installed as README.md says for a
// host (PREFIX=/usr/local, whose units take precedence over the
// distribution's): the socket starts the service on first use, so does the
// bus; systemctl start returns with the service running (READY=1); machines
// outlive systemctl restart and stop. Then back to upstream's as README.md
// says: the distribution's systemd-machined answers again and takes over the
// machines from the state files.
func TestSystemdPID1Activation(t *testing.T) {
	c := bootWithOurDaemon(t, "POLKITACTIONSDIR=/usr/share/polkit-1/actions")
	const svc = "systemd-machined.service"
	if s := c.unitState(svc); s != "inactive" {
		t.Fatalf("service %s before first use", s)
	}

	// Socket activation: the first Varlink call starts the service, ours.
	if out, errOut, code := c.varlinkIn("info"); code != 0 || !strings.Contains(out, "machined-go") {
		t.Fatalf("varlinkctl info: %d %s%s", code, out, errOut)
	}
	if s := c.unitState(svc); s != "active" {
		t.Fatalf("service %s after a Varlink call", s)
	}
	pid := c.mustRun("systemctl", "show", "--property=MainPID", "--value", svc)
	if exe := strings.TrimSpace(c.mustRun("readlink", "/proc/"+strings.TrimSpace(pid)+"/exe")); exe != "/usr/local/lib/machined/machined" {
		t.Fatalf("the service runs %q", exe)
	}

	// D-Bus activation: with socket and service stopped, machinectl starts it.
	c.mustRun("systemctl", "stop", "systemd-machined.socket", svc)
	if s := c.unitState(svc); s != "inactive" {
		t.Fatalf("service %s after stop", s)
	}
	if out := c.machines(); strings.TrimSpace(out) != "" {
		t.Errorf("machines: %q", out)
	}
	if s := c.unitState(svc); s != "active" {
		t.Fatalf("service %s after machinectl list", s)
	}

	// Readiness: Type=notify, so start returns once the daemon said READY=1
	// (without it systemctl would wait out the start timeout and fail).
	c.mustRun("systemctl", "stop", svc)
	c.mustRun("systemctl", "start", svc)
	props := c.mustRun("systemctl", "show", "--property=ActiveState,SubState,Type,StatusText", svc)
	for _, want := range []string{"ActiveState=active", "SubState=running", "Type=notify"} {
		if !strings.Contains(props, want+"\n") {
			t.Errorf("%s lacks %s:\n%s", svc, want, props)
		}
	}
	c.mustRun("systemctl", "start", "systemd-machined.socket")

	// Machines outlive a restart and a stop (the next client activates it).
	leader := c.scopeLeader("keep")
	c.registerMachine("keep", leader)
	c.mustRun("systemctl", "restart", svc)
	if !c.hasMachine("keep") {
		t.Errorf("after restart: %q", c.machines())
	}
	c.mustRun("systemctl", "stop", svc)
	out, errOut, code := c.varlinkIn("call", "io.systemd.Machine.List", `{"name":"keep"}`)
	if code != 0 || !strings.Contains(out, `"leader"`) {
		t.Errorf("Varlink List after stop: %d %s%s", code, out, errOut)
	}
	if got := c.machineProp("keep", "Leader"); got != strconv.Itoa(leader) {
		t.Errorf("leader after restarts %s, want %d", got, leader)
	}

	c.mustRun("systemctl", "disable", "--now", "systemd-machined.socket")
	c.mustRun("systemctl", "stop", svc)
	c.make("uninstall", "POLKITACTIONSDIR=/usr/share/polkit-1/actions")
	c.mustRun("systemctl", "daemon-reload")
	c.mustRun("systemctl", "reload", "dbus.service")
	if !c.hasMachine("keep") {
		t.Errorf("upstream's machined lost the machine: %q", c.machines())
	}
	pid = c.mustRun("systemctl", "show", "--property=MainPID", "--value", svc)
	if exe := strings.TrimSpace(c.mustRun("readlink", "/proc/"+strings.TrimSpace(pid)+"/exe")); exe != "/usr/lib/systemd/systemd-machined" {
		t.Errorf("after make uninstall the service runs %q", exe)
	}
	if got := c.machineProp("keep", "Leader"); got != strconv.Itoa(leader) {
		t.Errorf("upstream's leader %s, want %d", got, leader)
	}
}

// Scopes through the container's systemd: allocateUnit and CreateMachine make
// machine-NAME.scope in machine.slice; Kill whom=all signals the unit;
// Terminate stops it; a leader already in a unit registers that unit; and
// machinectl lists, shows and terminates them.
func TestSystemdPID1Scopes(t *testing.T) {
	c := bootWithOurDaemon(t)

	// A leader that notes SIGUSR1 (the scope's other process, a sleep, dies of it).
	noter := func(unit string) int {
		return c.serviceLeader(unit, "sh", "-c", `trap 'echo got > /run/`+unit+`.usr1' USR1; while :; do sleep 1; done`)
	}
	vl := noter("lead-vl")
	if out, errOut, code := c.varlinkIn("call", "io.systemd.Machine.Register", fmt.Sprintf(`{"name":"vl","class":"container","service":"test","leader":%d,"allocateUnit":true}`, vl)); code != 0 {
		t.Fatalf("Varlink Register allocateUnit: %s%s", out, errOut)
	}
	cm := noter("lead-cm")
	c.mustRun("busctl", "call", m1Dest, m1Path, m1Manager, "CreateMachine", "sayssusa(sv)", "cm", "0", "test", "container", strconv.Itoa(cm), "/", "0")
	for name, pid := range map[string]int{"vl": vl, "cm": cm} {
		scope := "machine-" + name + ".scope"
		if u := c.machineProp(name, "Unit"); u != scope {
			t.Errorf("%s: unit %q", name, u)
		}
		status := c.mustRun("systemctl", "status", "--lines=0", scope)
		if !strings.Contains(status, "Active: active (running)") || !strings.Contains(status, "─"+strconv.Itoa(pid)+" ") {
			t.Errorf("systemctl status %s:\n%s", scope, status)
		}
		if s := strings.TrimSpace(c.mustRun("systemctl", "show", "--property=Slice", "--value", scope)); s != "machine.slice" {
			t.Errorf("%s in slice %q", scope, s)
		}
		if cg := c.mustRun("cat", fmt.Sprintf("/proc/%d/cgroup", pid)); !strings.Contains(cg, "/machine.slice/"+scope+"\n") {
			t.Errorf("leader of %s not in its scope: %s", name, cg)
		}
		// sd-login (through ps) finds the machine from the unit systemd made.
		if m := strings.TrimSpace(c.mustRun("ps", "-o", "machine=", "-p", strconv.Itoa(pid))); m != name {
			t.Errorf("ps -o machine of %s's leader: %q", name, m)
		}
	}

	// Kill whom=all goes to the unit: the leader gets the signal and lives on.
	c.mustRun("machinectl", "kill", "--kill-whom=all", "--signal=SIGUSR1", "cm")
	eventually(t, "SIGUSR1 at cm's leader", func() bool {
		_, _, code := c.run("test", "-e", "/run/lead-cm.usr1")
		return code == 0
	})
	if out, errOut, code := c.varlinkIn("call", "io.systemd.Machine.Kill", `{"name":"vl","whom":"all","signal":10}`); code != 0 {
		t.Fatalf("Varlink Kill all: %s%s", out, errOut)
	}
	eventually(t, "SIGUSR1 at vl's leader", func() bool {
		_, _, code := c.run("test", "-e", "/run/lead-vl.usr1")
		return code == 0
	})
	if s := c.unitState("machine-cm.scope"); s != "active" {
		t.Errorf("SIGUSR1 ended cm's scope: %s", s)
	}

	// A leader in a scope of its own registers that scope.
	sc := c.scopeLeader("lead-sc")
	c.registerMachine("sc", sc)
	if u := c.machineProp("sc", "Unit"); u != "lead-sc.scope" {
		t.Errorf("sc: unit %q", u)
	}
	if m := strings.TrimSpace(c.mustRun("ps", "-o", "machine=", "-p", strconv.Itoa(sc))); m != "sc" {
		t.Errorf("ps -o machine of sc's leader: %q", m)
	}
	list := c.machines()
	for _, name := range []string{"vl", "cm", "sc"} {
		if !strings.Contains(list, name+" container test") {
			t.Errorf("machinectl list lacks %s:\n%s", name, list)
		}
	}
	status := c.mustRun("machinectl", "status", "sc")
	for _, want := range []string{"Leader: " + strconv.Itoa(sc) + " (sleep)", "Unit: lead-sc.scope", "Service: test; class container"} {
		if !strings.Contains(status, want) {
			t.Errorf("machinectl status sc lacks %q:\n%s", want, status)
		}
	}

	// Terminate stops the unit, whichever made it.
	for _, tc := range []struct{ name, unit string }{{"cm", "machine-cm.scope"}, {"vl", "machine-vl.scope"}, {"sc", "lead-sc.scope"}} {
		if tc.name == "vl" {
			if out, errOut, code := c.varlinkIn("call", "io.systemd.Machine.Terminate", `{"name":"vl"}`); code != 0 {
				t.Fatalf("Varlink Terminate: %s%s", out, errOut)
			}
		} else {
			c.mustRun("machinectl", "terminate", tc.name)
		}
		eventually(t, tc.unit+" stopped", func() bool {
			s := c.unitState(tc.unit)
			return s == "inactive" || s == "failed"
		})
		eventually(t, tc.name+" gone", func() bool { return !c.hasMachine(tc.name) })
	}
}

// journalEntries returns the container journal's entries matching the
// journalctl arguments, as field maps.
func (c *bootedContainer) journalEntries(args ...string) []map[string]any {
	c.t.Helper()
	out := c.mustRun("journalctl", append([]string{"--no-pager", "--output=json"}, args...)...)
	var entries []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" || line == "-- No entries --" {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			c.t.Fatalf("journalctl line %q: %v", line, err)
		}
		entries = append(entries, e)
	}
	return entries
}

// Our logs reach the journal as fields: upstream's message ids for a
// machine's start and stop (journalctl MESSAGE_ID=… finds them, with NAME and
// LEADER), and each line with the priority of its level, debug included once
// the level is lowered through LogControl1 (systemctl service-log-level).
func TestSystemdPID1Journal(t *testing.T) {
	c := bootWithOurDaemon(t)
	leader := c.scopeLeader("lead-j")
	c.registerMachine("jm", leader)
	c.mustRun("machinectl", "terminate", "jm")

	for _, id := range []struct{ id, text string }{
		{"24d8d4452573402496068381a6312df2", "New machine jm."},
		{"58432bd3bace477cb514b56381b8a758", "Machine jm terminated."},
	} {
		var e map[string]any
		eventually(t, "journal entry "+id.id, func() bool {
			for _, x := range c.journalEntries("MESSAGE_ID=" + id.id) {
				if x["NAME"] == "jm" {
					e = x
					return true
				}
			}
			return false
		})
		if msg, _ := e["MESSAGE"].(string); !strings.HasPrefix(msg, id.text) {
			t.Errorf("MESSAGE %q, want %q", msg, id.text)
		}
		if e["PRIORITY"] != "6" || e["_SYSTEMD_UNIT"] != "systemd-machined.service" {
			t.Errorf("entry %s: PRIORITY %v unit %v", id.id, e["PRIORITY"], e["_SYSTEMD_UNIT"])
		}
		if id.text == "New machine jm." && e["LEADER"] != strconv.Itoa(leader) {
			t.Errorf("LEADER %v, want %d", e["LEADER"], leader)
		}
	}

	c.mustRun("systemctl", "service-log-level", "systemd-machined.service", "debug")
	c.run("machinectl", "status", "no-such-machine")
	eventually(t, "a debug entry", func() bool {
		for _, e := range c.journalEntries("--unit=systemd-machined.service", "--priority=7..7") {
			if msg, _ := e["MESSAGE"].(string); strings.HasPrefix(msg, "D-Bus call refused") && strings.Contains(msg, "no-such-machine") {
				return true
			}
		}
		return false
	})
}

// asTester prefixes a command so that it runs as uid/gid 1000 (tester) in the
// container.
func asTester(args ...string) []string {
	return append([]string{"setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "--"}, args...)
}

// Unprivileged users of the container meet the container's polkit, with our
// policy installed: tester can neither terminate root's machine nor make a
// unit for a machine of its own (no agent answers, so polkit says no).
func TestSystemdPID1Polkit(t *testing.T) {
	c := bootWithOurDaemon(t)
	// An action upstream 252's policy lacks: polkitd reads ours.
	c.mustRun("pkaction", "--action-id", "org.freedesktop.machine1.inspect-machines")

	c.registerMachine("rootm", c.scopeLeader("lead-root"))
	cmd := asTester("machinectl", "terminate", "rootm")
	if out, errOut, code := c.run(cmd[0], cmd[1:]...); code == 0 {
		t.Errorf("tester terminated root's machine: %s%s", out, errOut)
	}
	if !c.hasMachine("rootm") {
		t.Error("root's machine is gone")
	}

	cmd = asTester("sh", "-c", "sleep infinity >/dev/null 2>&1 </dev/null & echo $!")
	own := strings.TrimSpace(c.mustRun(cmd[0], cmd[1:]...))
	cmd = asTester("busctl", "call", m1Dest, m1Path, m1Manager, "CreateMachine", "sayssusa(sv)", "tm", "0", "test", "container", own, "/", "0")
	out, errOut, code := c.run(cmd[0], cmd[1:]...)
	if code == 0 || !strings.Contains(errOut, "needs interactive authentication") {
		t.Errorf("tester's CreateMachine: %d %s%s", code, out, errOut)
	}
	if c.hasMachine("tm") {
		t.Error("tester's machine was created")
	}
	if s := c.unitState("machine-tm.scope"); s == "active" {
		t.Error("tester got a scope")
	}
}
