package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/godbus/dbus/v5"
)

// cgroupOf returns /proc/PID/cgroup.
func cgroupOf(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Without polkit an unprivileged caller may not have a unit made for its own
// process (it would leave its cgroup for a delegated one), on either
// transport; registering the same leader without a unit stays open to it.
func TestCreateUnitNeedsPrivileges(t *testing.T) {
	needCgroup2(t)
	d, bus := startBusDaemon(t, "--units", "cgroup", "--stop-timeout", "2s")
	l := spawnLeaderWith(t, &syscall.SysProcAttr{Credential: nobody})
	before := cgroupOf(t, l.pid)

	params := fmt.Sprintf(`{"name":"escape","class":"container","leader":%d,"allocateUnit":true}`, l.pid)
	_, errOut, code := varlinkctlAs(t, nobody, "call", d.sock(), "io.systemd.Machine.Register", params)
	if code == 0 || !strings.Contains(errOut, "io.systemd.Machine.PermissionDenied") && !strings.Contains(errOut, "PermissionDenied") {
		t.Errorf("Register allocateUnit as nobody: exit %d %s", code, errOut)
	}
	_, errOut, code = busctl(t, bus, nobody, "call", m1Dest, m1Path, m1Manager, "CreateMachine", "sayssusa(sv)", "escape2", "0", "", "container", fmt.Sprint(l.pid), "", "0")
	if code == 0 || !strings.Contains(errOut, "Access denied") {
		t.Errorf("CreateMachine as nobody: exit %d %s", code, errOut)
	}
	_, errOut, code = busctl(t, bus, nobody, "call", "--", m1Dest, m1Path, m1Manager, "CreateMachine", "sayssusa(sv)", "escape3", "0", "", "container", fmt.Sprint(l.pid), "", "1", "Slice", "s", "-.slice")
	if code == 0 || !strings.Contains(errOut, "root slice") {
		t.Errorf("CreateMachine into -.slice as nobody: exit %d %s", code, errOut)
	}
	if after := cgroupOf(t, l.pid); after != before {
		t.Fatalf("leader moved: %q -> %q", before, after)
	}
	for _, name := range []string{"escape", "escape2", "escape3"} {
		if !gone(t, d, name) {
			t.Errorf("%s registered", name)
		}
	}

	// Without a unit the leader it owns is still its to register.
	params = fmt.Sprintf(`{"name":"mine","class":"container","leader":%d}`, l.pid)
	if _, errOut, code := varlinkctlAs(t, nobody, "call", d.sock(), "io.systemd.Machine.Register", params); code != 0 {
		t.Fatalf("Register without a unit as nobody: %s", errOut)
	}
}

// The slice and the properties of CreateMachine are checked before anything
// is created: a bad slice name, the root slice and properties outside the
// whitelist or of another type than theirs are InvalidArgs naming the
// culprit, and the leader stays put.
func TestCreateMachineScopeProperties(t *testing.T) {
	needCgroup2(t)
	_, bus := startBusDaemon(t, "--units", "cgroup", "--stop-timeout", "2s")
	c := dbusConn(t, bus)
	l := spawnLeader(t)
	before := cgroupOf(t, l.pid)
	type prop struct {
		Name  string
		Value dbus.Variant
	}
	for _, tc := range []struct {
		props []prop
		want  string
	}{
		{[]prop{{"Slice", dbus.MakeVariant("-.slice")}}, "root slice"},
		{[]prop{{"Slice", dbus.MakeVariant("../x.slice")}}, "Invalid slice unit name"},
		{[]prop{{"Slice", dbus.MakeVariant("x/y.slice")}}, "Invalid slice unit name"},
		{[]prop{{"Slice", dbus.MakeVariant("foo")}}, "Invalid slice unit name"},
		{[]prop{{"Slice", dbus.MakeVariant("a--b.slice")}}, "Invalid slice unit name"},
		{[]prop{{"Slice", dbus.MakeVariant("-a.slice")}}, "Invalid slice unit name"},
		{[]prop{{"Slice", dbus.MakeVariant(uint32(1))}}, "Slice must be a string"},
		{[]prop{{"Slice", dbus.MakeVariant("a.slice")}, {"Slice", dbus.MakeVariant("b.slice")}}, "Slice must be given once"},
		{[]prop{{"User", dbus.MakeVariant("root")}}, `"User"`},
		{[]prop{{"PIDs", dbus.MakeVariant([]uint32{1})}}, `"PIDs"`},
		{[]prop{{"Delegate", dbus.MakeVariant(false)}}, `"Delegate"`},
		{[]prop{{"KillSignal", dbus.MakeVariant("15")}}, `Scope property "KillSignal" takes type "i", not "s"`},
		{[]prop{{"DeviceAllow", dbus.MakeVariant(map[string]string{"/dev/null": "rw"})}}, `Scope property "DeviceAllow" has type "a{ss}"`},
	} {
		err := managerCall(t, c, "CreateMachine", "badprops", []byte{}, "", "container", uint32(l.pid), "", tc.props).Store()
		var de dbus.Error
		if dbusErrorName(err) != "org.freedesktop.DBus.Error.InvalidArgs" || !asDBusError(err, &de) || !strings.Contains(fmt.Sprint(de.Body...), tc.want) {
			t.Errorf("CreateMachine %v: %v, want InvalidArgs %q", tc.props, err, tc.want)
		}
	}
	if after := cgroupOf(t, l.pid); after != before {
		t.Fatalf("leader moved by a refused request: %q -> %q", before, after)
	}

	// A slice the daemon creates goes with the last machine in it.
	slice := fmt.Sprintf("machinedtest%d.slice", os.Getpid())
	props := []prop{{"Slice", dbus.MakeVariant(slice)}, {"KillSignal", dbus.MakeVariant(int32(15))}}
	if err := managerCall(t, c, "CreateMachine", "sliced", []byte{}, "", "container", uint32(l.pid), "", props).Store(new(dbus.ObjectPath)); err != nil {
		t.Fatal(err)
	}
	if cg := cgroupOf(t, l.pid); !strings.Contains(cg, "/"+slice+"/machine-sliced.scope") {
		t.Fatalf("leader not in the named slice: %s", cg)
	}
	root := "/sys/fs/cgroup"
	if _, err := os.Stat(filepath.Join(root, "unified", "cgroup.controllers")); err == nil {
		root = filepath.Join(root, "unified")
	}
	if _, err := os.Stat(filepath.Join(root, slice)); err != nil {
		t.Fatalf("slice cgroup: %v", err)
	}
	if err := managerCall(t, c, "TerminateMachine", "sliced").Store(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "slice removed with its machine", func() bool {
		_, err := os.Stat(filepath.Join(root, slice))
		return os.IsNotExist(err)
	})
}

func asDBusError(err error, de *dbus.Error) bool {
	e, ok := err.(dbus.Error)
	if ok {
		*de = e
	}
	return ok
}
