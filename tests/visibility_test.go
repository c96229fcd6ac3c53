package tests

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/machined-go/machined/client"
)

// privateFields are the List fields a caller sees only of machines it may
// inspect (its own, or with privileges or an inspect-machines grant).
var privateFields = []string{"rootDirectory", "sshAddress", "sshPrivateKeyPath", "controlAddress", "leader", "supervisor", "UID"}

// listAs runs varlinkctl List --more as cred and returns the replies by name.
func listAs(t *testing.T, d *daemon, cred *syscall.Credential, params string) map[string]map[string]any {
	t.Helper()
	out, errOut, code := varlinkctlAs(t, cred, "call", "--more", "-j", d.sock(), "io.systemd.Machine.List", params)
	if code != 0 {
		t.Fatalf("varlinkctl List %s: %d %s", params, code, errOut)
	}
	got := map[string]map[string]any{}
	dec := json.NewDecoder(strings.NewReader(strings.ReplaceAll(out, "\x1e", ""))) // json-seq separators
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("List output: %v\n%s", err, out)
		}
		got[fmt.Sprint(m["name"])] = m
	}
	return got
}

func registerVisible(t *testing.T, d *daemon) (root, own *leader) {
	t.Helper()
	root = spawnLeader(t)
	cid := uint32(7)
	registerReq(t, d, client.RegisterRequest{
		Name: "rootbox", LeaderPID: root.pid,
		RootDirectory: "/srv/rootbox", SSHAddress: "vsock/7:22", SSHPrivateKeyPath: "/root/.ssh/box",
		ControlAddress: "unix:/run/rootbox.ctl", VSockCID: &cid, Service: "svc",
	})
	own = spawnLeaderWith(t, &syscall.SysProcAttr{Credential: nobody})
	params := fmt.Sprintf(`{"name":"nobodybox","class":"container","leader":%d,"rootDirectory":"/home/nobody/box"}`, own.pid)
	if _, errOut, code := varlinkctlAs(t, nobody, "call", d.sock(), "io.systemd.Machine.Register", params); code != 0 {
		t.Fatalf("Register as nobody: %s", errOut)
	}
	return root, own
}

// Without polkit, nobody sees of root's machine only what finding and reaching
// it takes; its own machine and, for root, every machine are shown in full.
func TestVisibilityVarlink(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "--units", "none")
	registerVisible(t, d)

	for _, params := range []string{`{}`, `{"acquireMetadata":"graceful"}`} {
		asNobody := listAs(t, d, nobody, params)
		rb := asNobody["rootbox"]
		for _, f := range privateFields {
			if _, ok := rb[f]; ok {
				t.Errorf("%s: nobody sees %s of root's machine: %v", params, f, rb[f])
			}
		}
		for _, f := range []string{"name", "class", "service", "timestamp", "vSockCid"} {
			if _, ok := rb[f]; !ok {
				t.Errorf("%s: nobody does not see %s of root's machine: %v", params, f, rb)
			}
		}
		for _, f := range []string{"OSRelease", "addresses", "UIDShift"} {
			if _, ok := rb[f]; ok {
				t.Errorf("%s: nobody got metadata %s of root's machine", params, f)
			}
		}
		if _, ok := asNobody[".host"]["UID"]; ok {
			t.Errorf("%s: nobody sees the UID of .host", params)
		}
		nb := asNobody["nobodybox"]
		if nb["rootDirectory"] != "/home/nobody/box" || nb["leader"] == nil || nb["UID"] != float64(65534) {
			t.Errorf("%s: nobody's own machine not shown in full: %v", params, nb)
		}

		asRoot := listAs(t, d, nil, params)["rootbox"]
		for _, f := range []string{"rootDirectory", "sshAddress", "sshPrivateKeyPath", "controlAddress", "leader", "UID"} {
			if _, ok := asRoot[f]; !ok {
				t.Errorf("%s: root does not see %s: %v", params, f, asRoot)
			}
		}
		if params != `{}` {
			if _, ok := asRoot["OSRelease"]; !ok {
				t.Errorf("root got no OSRelease with acquireMetadata: %v", asRoot)
			}
			if _, ok := nb["OSRelease"]; !ok {
				t.Errorf("nobody got no OSRelease of its own machine: %v", nb)
			}
		}
	}

	// The lookup of one machine by name gives the same view.
	out, errOut, code := varlinkctlAs(t, nobody, "call", "-j", d.sock(), "io.systemd.Machine.List", `{"name":"rootbox","acquireMetadata":"yes"}`)
	if code != 0 || strings.Contains(out, "/srv/rootbox") || strings.Contains(out, "OSRelease") || !strings.Contains(out, `"rootbox"`) {
		t.Errorf("List name=rootbox as nobody: %d %s %s", code, out, errOut)
	}
}

// On D-Bus a restricted property answers AccessDenied to Get and is left out
// of GetAll; os-release and SSH details need the same right; addresses, the
// uid shift and the properties clients need stay open. machinectl status
// still works for nobody.
func TestVisibilityDBus(t *testing.T) {
	needRoot(t)
	d, bus := startBusDaemon(t, "--units", "none")
	registerVisible(t, d)
	path := m1Path + "/machine/rootbox"

	for _, p := range []string{"RootDirectory", "SSHAddress", "SSHPrivateKeyPath", "Leader", "LeaderPIDFDId", "Supervisor", "SupervisorPIDFDId", "UID"} {
		if _, errOut, code := busctl(t, bus, nobody, "get-property", m1Dest, path, m1Machine, p); code == 0 || !strings.Contains(errOut, "Access denied") {
			t.Errorf("get-property %s as nobody: %d %s", p, code, errOut)
		}
		if _, errOut, code := busctl(t, bus, nil, "get-property", m1Dest, path, m1Machine, p); code != 0 {
			t.Errorf("get-property %s as root: %s", p, errOut)
		}
	}
	for _, p := range []string{"Name", "Class", "Service", "Unit", "Timestamp", "VSockCID", "State", "NetworkInterfaces", "Id"} {
		if _, errOut, code := busctl(t, bus, nobody, "get-property", m1Dest, path, m1Machine, p); code != 0 {
			t.Errorf("get-property %s as nobody: %s", p, errOut)
		}
	}
	getAll := func(cred *syscall.Credential, path string) string {
		out, errOut, code := busctl(t, bus, cred, "call", "--json=short", m1Dest, path, "org.freedesktop.DBus.Properties", "GetAll", "s", m1Machine)
		if code != 0 {
			t.Fatalf("GetAll: %s", errOut)
		}
		return out
	}
	if out := getAll(nobody, path); strings.Contains(out, "RootDirectory") || strings.Contains(out, "/srv/rootbox") || strings.Contains(out, `"UID"`) || !strings.Contains(out, `"VSockCID"`) {
		t.Errorf("GetAll as nobody: %s", out)
	}
	if out := getAll(nil, path); !strings.Contains(out, "/srv/rootbox") || !strings.Contains(out, `"UID"`) {
		t.Errorf("GetAll as root: %s", out)
	}
	if out := getAll(nobody, m1Path+"/machine/nobodybox"); !strings.Contains(out, "/home/nobody/box") {
		t.Errorf("GetAll of its own machine as nobody: %s", out)
	}

	call := func(cred *syscall.Credential, args ...string) (string, int) {
		_, errOut, code := busctl(t, bus, cred, append([]string{"call", m1Dest, m1Path, m1Manager}, args...)...)
		return errOut, code
	}
	for _, m := range []string{"GetMachineOSRelease", "GetMachineSSHInfo"} {
		if errOut, code := call(nobody, m, "s", "rootbox"); code == 0 || !strings.Contains(errOut, "Access denied") {
			t.Errorf("%s as nobody: %d %s", m, code, errOut)
		}
		if errOut, code := call(nil, m, "s", "rootbox"); code != 0 {
			t.Errorf("%s as root: %s", m, errOut)
		}
	}
	if _, errOut, code := busctl(t, bus, nobody, "call", m1Dest, path, m1Machine, "GetOSRelease"); code == 0 || !strings.Contains(errOut, "Access denied") {
		t.Errorf("Machine.GetOSRelease as nobody: %d %s", code, errOut)
	}
	if errOut, code := call(nobody, "GetMachineOSRelease", "s", "nobodybox"); code != 0 {
		t.Errorf("GetMachineOSRelease of its own machine as nobody: %s", errOut)
	}
	for _, args := range [][]string{{"GetMachineAddresses", "s", "rootbox"}, {"GetMachineUIDShift", "s", "rootbox"}} {
		if errOut, _ := call(nobody, args...); strings.Contains(errOut, "Access denied") {
			t.Errorf("%s as nobody refused: %s", args[0], errOut)
		}
	}

	out, errOut, code := inSystemdNS(t, d, bus, 65534, "machinectl", "--no-pager", "status", "rootbox")
	if code != 0 || !strings.Contains(out, "rootbox") || strings.Contains(out, "/srv/rootbox") {
		t.Errorf("machinectl status as nobody: %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = inSystemdNS(t, d, bus, -1, "machinectl", "--no-pager", "status", "rootbox")
	if code != 0 || !strings.Contains(out, "/srv/rootbox") {
		t.Errorf("machinectl status as root: %d\n%s\n%s", code, out, errOut)
	}
}

// With polkit, inspect-machines opens the full view to whom it grants it, and
// it is asked once per listing.
func TestVisibilityPolkitGrant(t *testing.T) {
	needRoot(t)
	bus := startPrivateBus(t)
	startPolkitd(t, bus, `polkit.addRule(function(action, subject) {
  if (subject.user != "nobody") { return polkit.Result.NOT_HANDLED; }
  if (action.id == "org.freedesktop.machine1.inspect-machines" || action.id == "org.freedesktop.machine1.register-machine") { return polkit.Result.YES; }
  return polkit.Result.NOT_HANDLED;
});
`)
	d := startDaemon(t, "--bus", bus.addr, "--units", "none")
	waitBusName(t, bus)
	registerVisible(t, d)
	if rb := listAs(t, d, nobody, `{}`)["rootbox"]; rb["rootDirectory"] != "/srv/rootbox" || rb["leader"] == nil {
		t.Errorf("List as nobody with inspect-machines: %v", rb)
	}
	if out, errOut, code := busctl(t, bus, nobody, "get-property", m1Dest, m1Path+"/machine/rootbox", m1Machine, "RootDirectory"); code != 0 || !strings.Contains(out, "/srv/rootbox") {
		t.Errorf("get-property RootDirectory with inspect-machines: %d %s %s", code, out, errOut)
	}
}
