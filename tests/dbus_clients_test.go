package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/machined-go/machined/client"
)

// machinectl from systemd 252 against the daemon: list, status, show, kill,
// terminate, poweroff, reboot. It refuses to run unless /run/systemd/system
// exists, so it runs in a private mount namespace (inSystemdNS).
func TestMachinectl(t *testing.T) {
	d, bus := startBusDaemon(t, "--units", "none")
	mctl := func(args ...string) (string, string, int) {
		t.Helper()
		return inSystemdNS(t, d, bus, -1, "machinectl", append([]string{"--no-pager"}, args...)...)
	}
	leaders := map[string]*leader{}
	for _, n := range []string{"box-1", "box-2", "box-3", "box-4", "box-5", "box-6"} {
		leaders[n] = spawnLeader(t)
		registerReq(t, d, client.RegisterRequest{Name: n, LeaderPID: leaders[n].pid, Service: "demo", ID: "112233445566778899aabbccddeeff01"})
	}

	out, errOut, code := mctl("list", "--no-legend")
	if code != 0 {
		t.Fatalf("machinectl list: %d %s", code, errOut)
	}
	for n := range leaders {
		if !strings.Contains(out, n+" container demo") {
			t.Errorf("machinectl list lacks %s:\n%s", n, out)
		}
	}
	if strings.Contains(out, ".host") {
		t.Errorf("machinectl list shows .host without --all:\n%s", out)
	}
	if out, _, _ := mctl("list", "--all", "--no-legend"); !strings.Contains(out, ".host host") {
		t.Errorf("machinectl list --all lacks .host:\n%s", out)
	}

	out, errOut, code = mctl("status", "box-1")
	if code != 0 {
		t.Fatalf("machinectl status: %d %s", code, errOut)
	}
	for _, want := range []string{"box-1(112233445566778899aabbccddeeff01)", fmt.Sprintf("Leader: %d (sleep)", leaders["box-1"].pid), "Service: demo; class container"} {
		if !strings.Contains(out, want) {
			t.Errorf("machinectl status lacks %q:\n%s", want, out)
		}
	}
	out, _, code = mctl("show", "box-1")
	for _, want := range []string{"Name=box-1\n", "Class=container\n", fmt.Sprintf("Leader=%d\n", leaders["box-1"].pid), "State=running\n", "Service=demo\n"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("machinectl show lacks %q:\n%s", want, out)
		}
	}
	if out, _, code := mctl("show"); code != 0 || !strings.Contains(out, "PoolPath=/var/lib/machines") {
		t.Errorf("machinectl show (manager): %d\n%s", code, out)
	}

	// Each verb ends its machine (leaders without a unit: the leader gets the signal).
	for verb, args := range map[string][]string{
		"box-1": {"kill", "box-1"},
		"box-2": {"terminate", "box-2"},
		"box-3": {"poweroff", "box-3"},
		"box-4": {"reboot", "box-4"},
		"box-5": {"kill", "--kill-whom=leader", "--signal=SIGKILL", "box-5"},
	} {
		if _, errOut, code := mctl(args...); code != 0 {
			t.Fatalf("machinectl %v: %d %s", args, code, errOut)
		}
		name := verb
		eventually(t, "machinectl "+args[0]+" ends "+name, func() bool { return gone(t, d, name) })
	}
	if out, _, _ := mctl("list", "--no-legend"); !strings.Contains(out, "box-6") || strings.Contains(out, "box-1") {
		t.Errorf("after the verbs:\n%s", out)
	}
	// nobody may look, not touch.
	if out, errOut, code := inSystemdNS(t, d, bus, 65534, "machinectl", "--no-pager", "--no-ask-password", "terminate", "box-6"); code == 0 {
		t.Errorf("nobody terminated box-6: %s %s", out, errOut)
	}
	if _, errOut, code := inSystemdNS(t, d, bus, 65534, "machinectl", "--no-pager", "list"); code != 0 {
		t.Errorf("nobody's machinectl list: %s", errOut)
	}
	if !syscallAlive(leaders["box-6"].pid) {
		t.Error("box-6 harmed")
	}
}

// systemd-nspawn 252 with --register=yes on a busybox tree: without
// --keep-unit it calls CreateMachineWithNetwork (the cgroup backend makes the
// scope), with it RegisterMachineWithNetwork; with --private-users=pick the
// machine gets a uid shift. Each container is seen on both transports and
// goes from both when it ends.
func TestNspawn(t *testing.T) {
	needCgroup2(t)
	needUserNS(t) // one case runs --private-users=pick
	if _, err := exec.LookPath("systemd-nspawn"); err != nil {
		t.Fatal("systemd-nspawn not installed: run `make deps` (systemd-container)")
	}
	// --units auto: the harness tells the daemon systemd does not run, so it
	// picks its cgroup backend, as on a host whose PID 1 is not systemd.
	d, bus := startBusDaemon(t, "--units", "auto", "--stop-timeout", "1s")
	if b, _ := os.ReadFile(filepath.Join(d.dir, "daemon.log")); !strings.Contains(string(b), `units="cgroup"`) {
		t.Fatalf("--units auto did not pick the cgroup backend:\n%s", b)
	}
	root := makeRootfs(t)
	c := dbusConn(t, bus)
	w := watchSignals(t, bus)

	// Names unique to this run: machine.slice is shared with anything else
	// on the host that makes machine scopes.
	sfx := fmt.Sprintf("-%d", os.Getpid())
	keepScope := fmt.Sprintf("test-nspawn-%d.scope", os.Getpid())
	for _, tc := range []struct {
		name  string
		opts  []string
		scope string // a scope nspawn runs in (--keep-unit), made by the test
		unit  string // the machine's unit
		end   []string
	}{
		{name: "nsp-scope" + sfx, unit: `machine-nsp\x2dscope\x2d` + sfx[1:] + ".scope", end: []string{"terminate"}},
		// --keep-unit: nspawn runs in a scope of its own, as under
		// systemd-nspawn@.service, and the machine adopts that unit.
		{name: "nsp-keep" + sfx, opts: []string{"--keep-unit"}, scope: keepScope, unit: keepScope, end: []string{"kill", "--signal=SIGKILL"}},
		{name: "nsp-userns" + sfx, opts: []string{"--private-users=pick"}, unit: `machine-nsp\x2duserns\x2d` + sfx[1:] + ".scope", end: []string{"terminate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// nspawn makes cgroups in the name=systemd hierarchy of a hybrid
			// host too, which systemd would remove with the unit.
			t.Cleanup(func() { removeCgroupTree("/sys/fs/cgroup/systemd/machine.slice/" + tc.unit) })
			name := "systemd-nspawn"
			args := append([]string{"--register=yes", "-M", tc.name, "-D", root, "--console=pipe", "-q"}, tc.opts...)
			args = append(args, "/bin/sleep", "100000")
			if tc.scope != "" {
				var join []string
				for _, h := range []string{cgroupRoot(t), "/sys/fs/cgroup/systemd"} {
					dir := h + "/machine.slice/" + tc.scope
					if err := os.MkdirAll(dir, 0o755); err != nil {
						if h == cgroupRoot(t) {
							t.Fatal(err)
						}
						continue
					}
					t.Cleanup(func() { removeCgroupTree(dir) })
					join = append(join, "echo $$ > '"+dir+"/cgroup.procs'")
				}
				args = append([]string{"-c", strings.Join(join, "; ") + `; exec systemd-nspawn "$@"`, "sh"}, args...)
				name = "sh"
			}
			_, _, done := startInSystemdNS(t, d, bus, name, args...)
			w.wait("MachineNew", tc.name)

			// Varlink sees it.
			m, err := getOne(t, d, tc.name)
			if err != nil {
				t.Fatalf("Varlink List: %v", err)
			}
			if m.Service != "systemd-nspawn" || m.Class != client.ClassContainer || m.RootDirectory != root {
				t.Errorf("Varlink fields: %+v", m)
			}
			if m.Unit != tc.unit {
				t.Errorf("unit %v, want %s", m.Unit, tc.unit)
			}
			// D-Bus sees it.
			var list []struct {
				Name, Class, Service string
				Path                 dbus.ObjectPath
			}
			if err := managerCall(t, c, "ListMachines").Store(&list); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, e := range list {
				found = found || e.Name == tc.name && e.Service == "systemd-nspawn"
			}
			if !found {
				t.Fatalf("ListMachines lacks %s: %v", tc.name, list)
			}
			var shift uint32
			if err := managerCall(t, c, "GetMachineUIDShift", tc.name).Store(&shift); err != nil {
				t.Fatalf("GetMachineUIDShift: %v", err)
			}
			if want := strings.HasPrefix(tc.name, "nsp-userns"); (shift != 0) != want {
				t.Errorf("uid shift %d", shift)
			}
			if m.UIDShift != nil && *m.UIDShift != shift {
				t.Errorf("Varlink UIDShift %v, D-Bus %d", *m.UIDShift, shift)
			}
			if m.Leader == nil {
				t.Fatalf("Varlink shows no leader: %+v", m)
			}
			leader := m.Leader.PID
			cg, _ := os.ReadFile("/proc/" + strconv.Itoa(leader) + "/cgroup")
			if !strings.Contains(string(cg), "0::/machine.slice/"+tc.unit) {
				t.Errorf("leader not in its scope %s: %s", tc.unit, cg)
			}

			if _, errOut, code := inSystemdNS(t, d, bus, -1, "machinectl", append(tc.end, tc.name)...); code != 0 {
				t.Fatalf("machinectl %v: %s", tc.end, errOut)
			}
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("nspawn did not exit")
			}
			w.wait("MachineRemoved", tc.name)
			if !gone(t, d, tc.name) {
				t.Error("still on Varlink")
			}
			if name := dbusErrorName(managerCall(t, c, "GetMachine", tc.name).Err); name != "org.freedesktop.machine1.NoSuchMachine" {
				t.Errorf("GetMachine after exit: %s", name)
			}
			if tc.scope == "" {
				// The daemon removes the scope it made, nspawn's payload cgroup in it included.
				dir := cgroupRoot(t) + "/machine.slice/" + tc.unit
				eventually(t, "scope cgroup removed", func() bool {
					_, err := os.Stat(dir)
					return os.IsNotExist(err)
				})
			}
		})
	}
}

// nss-mymachines resolves a container's name to the addresses of its network
// namespace, asking the daemon over the system bus (DBUS_SYSTEM_BUS_ADDRESS
// points getent at the private bus; the state files it reads first are bound
// over /run/systemd/machines).
func TestNssMymachines(t *testing.T) {
	d, bus := startBusDaemon(t, "--units", "none")
	if !nssHasMymachines() {
		t.Fatal("nss-mymachines is not in the hosts: line of /etc/nsswitch.conf: install libnss-mymachines (`make deps`)")
	}
	// A leader alone in a network namespace with one address; lo stays down,
	// so that address is all there is.
	cmd := exec.Command("unshare", "-n", "sh", "-c", "ip addr add 10.213.7.2/32 dev lo && exec sleep 100000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	eventually(t, "the leader configured its address", func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
		return strings.TrimSpace(string(b)) == "sleep"
	})
	c := dbusConn(t, bus)
	if err := managerCall(t, c, "RegisterMachine", "nssbox", []byte{}, "test", "container", uint32(cmd.Process.Pid), "").Store(new(dbus.ObjectPath)); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := inSystemdNS(t, d, bus, -1, "getent", "ahostsv4", "nssbox")
	if code != 0 || !strings.Contains(out, "10.213.7.2") {
		t.Fatalf("getent ahostsv4 nssbox: exit %d %q %s", code, out, errOut)
	}
	out, _, code = inSystemdNS(t, d, bus, 65534, "getent", "hosts", "nssbox")
	if code != 0 || !strings.HasPrefix(out, "10.213.7.2") {
		t.Errorf("getent hosts as nobody: exit %d %q", code, out)
	}
	// A container in the host's network namespace has no addresses of its own.
	l := spawnLeader(t)
	register(t, d, "hostnet", l.pid)
	if out, _, code := inSystemdNS(t, d, bus, -1, "getent", "hosts", "hostnet"); code == 0 {
		t.Errorf("getent hosts hostnet resolved: %q", out)
	}
}

func nssHasMymachines() bool {
	b, err := os.ReadFile("/etc/nsswitch.conf")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "hosts:" && strings.Contains(line, "mymachines") {
			return true
		}
	}
	return false
}

// cgroupRoot is the cgroup2 mount: the unified one of a hybrid host, or /sys/fs/cgroup.
func cgroupRoot(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		if _, err := os.Stat(p + "/cgroup.controllers"); err == nil {
			return p
		}
	}
	t.Fatal("no cgroup2 hierarchy")
	return ""
}

// removeCgroupTree removes an empty cgroup directory tree, deepest first.
func removeCgroupTree(dir string) {
	var dirs []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		syscall.Rmdir(dirs[i])
	}
}
