package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/machined-go/machined/client"
)

// upstream*Rows are upstream machined's (v262) members as `busctl introspect`
// prints them: name, type, signature, result, flags (without values).
var upstreamManagerRows = []string{
	".BindMountMachine method sssbb -",
	".CleanPool method s a(st)",
	".CloneImage method ssb -",
	".CopyFromMachine method sss -",
	".CopyFromMachineWithFlags method ssst -",
	".CopyToMachine method sss -",
	".CopyToMachineWithFlags method ssst -",
	".CreateMachine method sayssusa(sv) o",
	".CreateMachineEx method sa(sv)a(sv) o",
	".CreateMachineWithNetwork method sayssusaia(sv) o",
	".GetImage method s o",
	".GetImageHostname method s s",
	".GetImageMachineID method s ay",
	".GetImageMachineInfo method s a{ss}",
	".GetImageOSRelease method s a{ss}",
	".GetMachine method s o",
	".GetMachineAddresses method s a(iay)",
	".GetMachineByPID method u o",
	".GetMachineOSRelease method s a{ss}",
	".GetMachineSSHInfo method s ss",
	".GetMachineUIDShift method s u",
	".KillMachine method ssi -",
	".ListImages method - a(ssbttto)",
	".ListMachines method - a(ssso)",
	".MapFromMachineGroup method su u",
	".MapFromMachineUser method su u",
	".MapToMachineGroup method u sou",
	".MapToMachineUser method u sou",
	".MarkImageReadOnly method sb -",
	".OpenMachineLogin method s hs",
	".OpenMachinePTY method s hs",
	".OpenMachineRootDirectory method s h",
	".OpenMachineShell method sssasas hs",
	".RegisterMachine method sayssus o",
	".RegisterMachineEx method sa(sv) o",
	".RegisterMachineWithNetwork method sayssusai o",
	".RemoveImage method s -",
	".RenameImage method ss -",
	".SetImageLimit method st -",
	".SetPoolLimit method t -",
	".TerminateMachine method s -",
	".UnregisterMachine method s -",
	".PoolLimit property t",
	".PoolPath property s",
	".PoolUsage property t",
	".MachineNew signal so -",
	".MachineRemoved signal so -",
}

var upstreamMachineRows = []string{
	".BindMount method ssbb -",
	".CopyFrom method ss -",
	".CopyFromWithFlags method sst -",
	".CopyTo method ss -",
	".CopyToWithFlags method sst -",
	".GetAddresses method - a(iay)",
	".GetOSRelease method - a{ss}",
	".GetSSHInfo method - ss",
	".GetUIDShift method - u",
	".Kill method si -",
	".OpenLogin method - hs",
	".OpenPTY method - hs",
	".OpenRootDirectory method - h",
	".OpenShell method ssasas hs",
	".Terminate method - -",
	".Class property s",
	".Id property ay",
	".Leader property u",
	".LeaderPIDFDId property t",
	".Name property s",
	".NetworkInterfaces property ai",
	".RootDirectory property s",
	".SSHAddress property s",
	".SSHPrivateKeyPath property s",
	".Service property s",
	".State property s",
	".Subgroup property s",
	".Supervisor property u",
	".SupervisorPIDFDId property t",
	".Timestamp property t",
	".TimestampMonotonic property t",
	".UID property u",
	".Unit property s",
	".VSockCID property u",
}

// introspectRows runs `busctl introspect` on path and returns the rows of
// iface in the notation above.
func introspectRows(t *testing.T, bus *privateBus, path, iface string) []string {
	t.Helper()
	out, errOut, code := busctl(t, bus, nil, "introspect", "--no-legend", "--no-pager", m1Dest, path, iface)
	if code != 0 {
		t.Fatalf("busctl introspect %s: %s", path, errOut)
	}
	var rows []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || !strings.HasPrefix(f[0], ".") {
			continue
		}
		switch f[1] {
		case "method", "signal":
			rows = append(rows, strings.Join(f[:4], " "))
		case "property":
			rows = append(rows, strings.Join(f[:3], " "))
		}
	}
	return rows
}

func sameRows(t *testing.T, what string, got, want []string) {
	t.Helper()
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	if slices.Equal(g, w) {
		return
	}
	for _, x := range w {
		if !slices.Contains(g, x) {
			t.Errorf("%s: busctl does not show %s", what, x)
		}
	}
	for _, x := range g {
		if !slices.Contains(w, x) {
			t.Errorf("%s: busctl shows extra %s", what, x)
		}
	}
}

// busctl tree, introspect and call against the daemon: the member lists are
// upstream's, and the object tree has every machine.
func TestDBusBusctl(t *testing.T) {
	d, bus := startBusDaemon(t, "--units", "none")
	l := spawnLeader(t)
	registerReq(t, d, client.RegisterRequest{Name: "web-1", LeaderPID: l.pid, Service: "demo"})

	out, errOut, code := busctl(t, bus, nil, "tree", "--list", m1Dest)
	if code != 0 {
		t.Fatalf("busctl tree: %s", errOut)
	}
	for _, p := range []string{"/org/freedesktop/LogControl1", m1Path, m1Path + "/machine", m1Path + "/machine/_2ehost", m1Path + "/machine/web_2d1"} {
		if !slices.Contains(strings.Fields(out), p) {
			t.Errorf("busctl tree lacks %s:\n%s", p, out)
		}
	}

	sameRows(t, "Manager", introspectRows(t, bus, m1Path, m1Manager), upstreamManagerRows)
	sameRows(t, "Machine", introspectRows(t, bus, m1Path+"/machine/web_2d1", m1Machine), upstreamMachineRows)
	sameRows(t, "LogControl1", introspectRows(t, bus, "/org/freedesktop/LogControl1", "org.freedesktop.LogControl1"),
		[]string{".LogLevel property s", ".LogTarget property s", ".SyslogIdentifier property s"})

	out, errOut, code = busctl(t, bus, nil, "call", m1Dest, m1Path, m1Manager, "GetMachine", "s", "web-1")
	if code != 0 || strings.TrimSpace(out) != `o "/org/freedesktop/machine1/machine/web_2d1"` {
		t.Errorf("busctl call GetMachine: %q %s", out, errOut)
	}
	out, _, code = busctl(t, bus, nil, "call", m1Dest, m1Path, m1Manager, "ListMachines")
	if code != 0 || !strings.Contains(out, `"web-1" "container" "demo" "/org/freedesktop/machine1/machine/web_2d1"`) {
		t.Errorf("busctl call ListMachines: %q", out)
	}
	out, _, code = busctl(t, bus, nil, "get-property", m1Dest, m1Path+"/machine/web_2d1", m1Machine, "Leader")
	if code != 0 || strings.TrimSpace(out) != fmt.Sprintf("u %d", l.pid) {
		t.Errorf("busctl get-property Leader: %q", out)
	}
	// A registration over D-Bus shows up on Varlink.
	l2 := spawnLeader(t)
	if _, errOut, code := busctl(t, bus, nil, "call", m1Dest, m1Path, m1Manager, "RegisterMachine", "sayssus", "db-2", "0", "svc2", "vm", fmt.Sprint(l2.pid), ""); code != 0 {
		t.Fatalf("RegisterMachine: %s", errOut)
	}
	m, err := getOne(t, d, "db-2")
	if err != nil || m.Class != client.ClassVM || m.Service != "svc2" {
		t.Fatalf("Varlink List of a D-Bus registration: %+v %v", m, err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"GetMachine", "s", "nope"}, "No machine 'nope' known"},
		{[]string{"GetMachine", "u", "1"}, "Invalid arguments 'u' to call org.freedesktop.machine1.Manager.GetMachine(), expecting 's'."},
		{[]string{"TerminateMachine", "s", ".host"}, "cannot be terminated"},
		{[]string{"RegisterMachine", "sayssus", "db-2", "0", "", "vm", fmt.Sprint(l2.pid), ""}, "Machine 'db-2' already exists"},
	} {
		_, errOut, code := busctl(t, bus, nil, append([]string{"call", m1Dest, m1Path, m1Manager}, c.args...)...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("busctl call %v: exit %d %q, want %q", c.args, code, errOut, c.want)
		}
	}
	// Error names and texts as upstream's (252 and 257 agree).
	gc := dbusConn(t, bus)
	for _, c := range []struct {
		method    string
		args      []any
		name, msg string
	}{
		{"RegisterMachine", []any{"hostclass", []byte{}, "", "host", uint32(l2.pid), ""}, "org.freedesktop.DBus.Error.InvalidArgs", "Invalid machine class parameter"},
		{"MapFromMachineUser", []any{"db-2", uint32(0)}, "org.freedesktop.DBus.Error.InvalidArgs", "Not supported for non-container machines."},
		{"MapFromMachineGroup", []any{"db-2", uint32(0)}, "org.freedesktop.DBus.Error.InvalidArgs", "Not supported for non-container machines."},
		{"GetMachine", []any{"bad/name"}, "org.freedesktop.machine1.NoSuchMachine", "No machine 'bad/name' known"},
		{"TerminateMachine", []any{"bad/name"}, "org.freedesktop.machine1.NoSuchMachine", "No machine 'bad/name' known"},
		{"GetMachineAddresses", []any{"-x"}, "org.freedesktop.machine1.NoSuchMachine", "No machine '-x' known"},
		{"MapFromMachineUser", []any{"bad/name", uint32(0)}, "org.freedesktop.machine1.NoSuchMachine", "No machine 'bad/name' known"},
		{"MapFromMachineGroup", []any{"-x", uint32(0)}, "org.freedesktop.machine1.NoSuchMachine", "No machine '-x' known"},
		{"MapFromMachineUser", []any{"bad/name", uint32(65535)}, "org.freedesktop.DBus.Error.InvalidArgs", "Invalid user ID 65535"},
	} {
		err := managerCall(t, gc, c.method, c.args...).Store()
		var de dbus.Error
		if !errors.As(err, &de) || de.Name != c.name || fmt.Sprint(de.Body...) != c.msg {
			t.Errorf("%s%v: %v, want %s %q", c.method, c.args, err, c.name, c.msg)
		}
	}
	if _, errOut, code := busctl(t, bus, nil, "introspect", m1Dest, m1Path+"/machine/nope"); code == 0 || !strings.Contains(errOut, "Unknown object") {
		t.Errorf("introspect of a missing machine: %d %s", code, errOut)
	}
}

// Callers other than root are refused where upstream refuses them
// (docs/DECISIONS.md 12), by the daemon (the
// packaged bus policy lets them call every method), and may act on their own
// machines.
func TestDBusUnprivileged(t *testing.T) {
	d, bus := startBusDaemon(t, "--units", "none")
	l := spawnLeader(t)
	register(t, d, "rootsbox", l.pid)

	call := func(args ...string) (string, string, int) {
		return busctl(t, bus, nobody, append([]string{"call", m1Dest, m1Path, m1Manager}, args...)...)
	}
	// busctl shows AccessDenied as "Access denied" whatever the message, so
	// the daemon's log tells its refusals from the broker's.
	refusedByDaemon := func(member string) bool {
		b, _ := os.ReadFile(filepath.Join(d.dir, "daemon.log"))
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "D-Bus call refused") && strings.Contains(line, fmt.Sprintf("member=%q", member)) && strings.Contains(line, "permission denied") {
				return true
			}
		}
		return false
	}
	denied := func(args ...string) {
		t.Helper()
		out, errOut, code := call(args...)
		if code == 0 || !strings.Contains(errOut, "Access denied") || !refusedByDaemon(args[0]) {
			t.Errorf("%v as nobody: exit %d %s %s", args, code, out, errOut)
		}
	}
	denied("TerminateMachine", "s", "rootsbox")
	denied("KillMachine", "ssi", "rootsbox", "all", "9")
	denied("UnregisterMachine", "s", "rootsbox")
	denied("RegisterMachine", "sayssus", "stolen", "0", "", "container", fmt.Sprint(l.pid), "")
	denied("CreateMachine", "sayssusa(sv)", "stolen2", "0", "", "container", fmt.Sprint(l.pid), "", "0")
	if _, errOut, code := busctl(t, bus, nobody, "call", m1Dest, m1Path+"/machine/rootsbox", m1Machine, "Kill", "si", "leader", "9"); code == 0 || !refusedByDaemon("Kill") {
		t.Errorf("Machine.Kill as nobody: %d %s", code, errOut)
	}
	if _, errOut, code := busctl(t, bus, nobody, "set-property", m1Dest, "/org/freedesktop/LogControl1", "org.freedesktop.LogControl1", "LogLevel", "s", "debug"); code == 0 {
		t.Errorf("nobody set the log level: %s", errOut)
	}
	if _, errOut, code := call("ListMachines"); code != 0 {
		t.Errorf("ListMachines as nobody: %s", errOut)
	}
	if _, errOut, code := busctl(t, bus, nobody, "get-property", m1Dest, m1Path+"/machine/rootsbox", m1Machine, "Name"); code != 0 {
		t.Errorf("Get as nobody: %s", errOut)
	}
	if !syscallAlive(l.pid) {
		t.Fatal("root's leader was harmed")
	}

	// nobody's own leader: registered with leader 0 would be busctl itself, so
	// name a sleep that nobody owns.
	own := spawnLeaderWith(t, &syscall.SysProcAttr{Credential: nobody})
	if _, errOut, code := call("RegisterMachine", "sayssus", "mine", "0", "", "container", fmt.Sprint(own.pid), ""); code != 0 {
		t.Fatalf("nobody registering its own leader: %s", errOut)
	}
	out, _, _ := busctl(t, bus, nil, "get-property", m1Dest, m1Path+"/machine/mine", m1Machine, "UID")
	if strings.TrimSpace(out) != "u 65534" {
		t.Errorf("UID of nobody's machine: %q", out)
	}
	if _, errOut, code := call("KillMachine", "ssi", "mine", "leader", "15"); code != 0 {
		t.Errorf("owner could not kill: %s", errOut)
	}
	eventually(t, "nobody's machine gone", func() bool { return gone(t, d, "mine") })
}

func syscallAlive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// Registrations through either transport are announced on D-Bus, and
// removals through either transport too.
func TestDBusCrossTransportSignals(t *testing.T) {
	d, bus := startBusDaemon(t, "--units", "none")
	w := watchSignals(t, bus)
	c := dbusConn(t, bus)

	l1 := spawnLeader(t)
	if out, errOut, code := varlinkctl(t, "call", d.sock(), "io.systemd.Machine.Register", fmt.Sprintf(`{"name":"from-varlink","class":"container","leader":%d}`, l1.pid)); code != 0 {
		t.Fatalf("Register: %s %s", out, errOut)
	}
	w.wait("MachineNew", "from-varlink")
	var path dbus.ObjectPath
	if err := managerCall(t, c, "GetMachine", "from-varlink").Store(&path); err != nil || path != m1Path+"/machine/from_2dvarlink" {
		t.Fatalf("GetMachine: %s %v", path, err)
	}

	l2 := spawnLeader(t)
	if err := managerCall(t, c, "RegisterMachine", "from-dbus", []byte{}, "x", "container", uint32(l2.pid), "").Store(&path); err != nil {
		t.Fatal(err)
	}
	w.wait("MachineNew", "from-dbus")
	if m, err := getOne(t, d, "from-dbus"); err != nil || m.Service != "x" {
		t.Fatalf("Varlink List: %+v %v", m, err)
	}

	if err := dialClient(t, d).Unregister(context.Background(), client.ByName("from-dbus")); err != nil {
		t.Fatal(err)
	}
	w.wait("MachineRemoved", "from-dbus")
	if err := managerCall(t, c, "UnregisterMachine", "from-varlink").Store(); err != nil {
		t.Fatal(err)
	}
	w.wait("MachineRemoved", "from-varlink")
	if !gone(t, d, "from-varlink") {
		t.Error("unregistered over D-Bus, still on Varlink")
	}
	// A leader's death, noticed by the core, is a removal too.
	l3 := spawnLeader(t)
	register(t, d, "dies", l3.pid)
	w.wait("MachineNew", "dies")
	l3.kill()
	w.wait("MachineRemoved", "dies")
}

// CreateMachine answers only once the scope exists: the leader is in it when
// the reply arrives.
func TestDBusCreateMachineScope(t *testing.T) {
	needCgroup2(t)
	_, bus := startBusDaemon(t, "--units", "cgroup", "--stop-timeout", "2s")
	c := dbusConn(t, bus)
	l := spawnLeader(t)
	props := []struct {
		Name  string
		Value dbus.Variant
	}{{"Description", dbus.MakeVariant("ignored by the cgroup backend")}}
	var path dbus.ObjectPath
	name := fmt.Sprintf("dbscope%d", os.Getpid()) // machine.slice is shared with the host
	if err := managerCall(t, c, "CreateMachine", name, []byte{}, "test", "container", uint32(l.pid), "", props).Store(&path); err != nil {
		t.Fatal(err)
	}
	cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", l.pid))
	if !strings.Contains(string(cg), "/machine.slice/machine-"+name+".scope") {
		t.Fatalf("reply before the scope: %s", cg)
	}
	var unit dbus.Variant
	if err := c.Object(m1Dest, path).Call("org.freedesktop.DBus.Properties.Get", 0, m1Machine, "Unit").Store(&unit); err != nil || unit.Value() != "machine-"+name+".scope" {
		t.Errorf("Unit %v %v", unit, err)
	}
	if err := managerCall(t, c, "TerminateMachine", name).Store(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "terminated", func() bool {
		return dbusErrorName(managerCall(t, c, "GetMachine", name).Err) == "org.freedesktop.machine1.NoSuchMachine"
	})
}

// The bus going away leaves the Varlink side working.
func TestDBusBusGoesAway(t *testing.T) {
	d, bus := startBusDaemon(t, "--units", "none")
	bus.stop()
	eventually(t, "the daemon notices", func() bool {
		b, _ := os.ReadFile(filepath.Join(d.dir, "daemon.log"))
		return strings.Contains(string(b), "lost the D-Bus connection")
	})
	l := spawnLeader(t)
	register(t, d, "after", l.pid)
	if _, err := getOne(t, d, "after"); err != nil {
		t.Fatalf("Varlink after the bus left: %v", err)
	}
	if d.cmd.ProcessState != nil {
		t.Fatal("daemon exited")
	}
}

// A second daemon on the same bus fails clearly; --bus auto without a bus
// runs Varlink-only.
func TestDBusNameTakenAndAuto(t *testing.T) {
	_, bus := startBusDaemon(t, "--units", "none")
	dir := newRuntimeDir(t)
	out, errOut, code := run(t, nil, nil, daemonBin, "--runtime-dir", dir, "--bus", bus.addr, "--units", "none", "--userdb-dir", "none")
	if code == 0 || !strings.Contains(errOut, "org.freedesktop.machine1 is already owned") {
		t.Fatalf("second daemon: exit %d %s %s", code, out, errOut)
	}
	// It bound its own socket before it found the name taken; it leaves no
	// dead socket file behind.
	if _, err := os.Lstat(filepath.Join(dir, "systemd", "machine", "io.systemd.Machine")); !os.IsNotExist(err) {
		t.Errorf("the daemon that lost the bus name left its socket file: %v", err)
	}

	d := &daemon{t: t, dir: newRuntimeDir(t)}
	d.args = []string{"--runtime-dir", d.dir, "--bus", "auto", "--units", "none", "--userdb-dir", "none"}
	d.env = []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + filepath.Join(d.dir, "no-bus-here")}
	d.start()
	t.Cleanup(func() { d.stop(syscall.SIGTERM) })
	b, _ := os.ReadFile(filepath.Join(d.dir, "daemon.log"))
	if n := strings.Count(string(b), "D-Bus not reachable, running Varlink-only"); n != 1 {
		t.Errorf("auto without a bus logged %d times:\n%s", n, b)
	}
	// --bus system honours DBUS_SYSTEM_BUS_ADDRESS.
	e := &daemon{t: t, dir: newRuntimeDir(t)}
	e.args = []string{"--runtime-dir", e.dir, "--bus", "system", "--units", "none", "--userdb-dir", "none"}
	e.env = []string{"DBUS_SYSTEM_BUS_ADDRESS=" + bus.addr}
	_, errOut, code = run(t, e.env, nil, daemonBin, e.args...)
	if code == 0 || !strings.Contains(errOut, "already owned") {
		t.Errorf("--bus system did not reach the private bus: %d %s", code, errOut)
	}
}
