package proc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestUnitFromCgroupPath(t *testing.T) {
	for _, tc := range []struct{ in, unit, sub string }{
		{"/", "", ""},
		{"", "", ""},
		{"/machine.slice/machine-foo.scope", "machine-foo.scope", ""},
		{"/machine.slice/machine-foo.scope/payload", "machine-foo.scope", "payload"},
		{"/system.slice/systemd-nspawn@foo.service/supervisor", "systemd-nspawn@foo.service", "supervisor"},
		{"/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope", "user@1000.service", "app.slice/x.scope"},
		{"/process_api/abc", "", ""},
		{"/system.slice/foo.service", "foo.service", ""},
		{"/system.slice", "", ""},
		{"/a.slice/a-b.slice/a-b-c.slice", "", ""},
		{"/init.scope", "init.scope", ""},
		{"/system.slice/a\\x2db.mount/sub/deeper", "a\\x2db.mount", "sub/deeper"},
		{"/machine.slice/machine-fedora\\x2d40.scope", "machine-fedora\\x2d40.scope", ""},
		{"/system.slice/dbus.socket", "dbus.socket", ""},
		{"/system.slice/dev-sda2.swap", "dev-sda2.swap", ""},
		{"machine.slice/machine-foo.scope", "machine-foo.scope", ""}, // no leading slash
		// systemd escapes cgroup names that could clash with kernel files by "_".
		{"/system.slice/_cpu.service", "cpu.service", ""},
		// Unit types that never own a cgroup.
		{"/system.slice/sys-devices-x.device", "", ""},
		{"/system.slice/foo.timer", "", ""},
		{"/system.slice/multi-user.target", "", ""},
		// Not unit names.
		{"/system.slice/bad name.service", "", ""},
		{"/system.slice/.service", "", ""},
		{"/system.slice/foo@.service", "", ""},
		{"/system.slice/a@b@c.service", "", ""},
		{"/foo.bar", "", ""},
		{"/lxc.payload.c1/init.scope", "", ""},
		// The first non-slice component decides, even if a unit follows.
		{"/docker/abc/foo.service", "", ""},
		{"//machine-foo.scope", "", ""},
		{"/machine.slice//machine-foo.scope", "", ""},
		// From the cgroup backend's table, when it had a copy of this function.
		{"/machine.slice/machine-foo.scope/payload/a/b", "machine-foo.scope", "payload/a/b"},
		{"/machine.slice/machine-foo.scope/", "machine-foo.scope", ""},
		{"/system.slice/system-getty.slice/getty@tty1.service", "getty@tty1.service", ""},
		{"/_cpu.foo.scope", "cpu.foo.scope", ""},
		{"/machine.slice", "", ""},
		{"/process_api/62fef4890ad7", "", ""},
		{"/foo.target/x", "", ""},
		// A leading '.' is no unit name, escaped or not.
		{"/system.slice/_.foo.service", "", ""},
		{"/system.slice/.foo.service", "", ""},
	} {
		u, s := UnitFromCgroupPath(tc.in)
		if u != tc.unit || s != tc.sub {
			t.Errorf("UnitFromCgroupPath(%q) = (%q, %q), want (%q, %q)", tc.in, u, s, tc.unit, tc.sub)
		}
	}
}

// A per-user instance names the units of the user's manager: what lies below
// user@UID.service, slices skipped again; nothing outside a user manager.
func TestUserUnitFromCgroupPath(t *testing.T) {
	for _, tc := range []struct{ in, unit, sub string }{
		{"/user.slice/user-1000.slice/user@1000.service/app.slice/lead.service", "lead.service", ""},
		{"/user.slice/user-1000.slice/user@1000.service/app.slice/lead.service/payload/a", "lead.service", "payload/a"},
		{"/user.slice/user-1000.slice/user@1000.service/machine.slice/machine-foo.scope", "machine-foo.scope", ""},
		{"/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome.slice/x.scope", "x.scope", ""},
		{"/user.slice/user-1000.slice/user@1000.service/init.scope", "init.scope", ""},
		{"/user.slice/user-1000.slice/user@1000.service/_cpu.service", "cpu.service", ""},
		{"/user.slice/user-1000.slice/user@1000.service/machine-foo.scope/", "machine-foo.scope", ""},
		// The manager's own cgroup, or only slices below it.
		{"/user.slice/user-1000.slice/user@1000.service", "", ""},
		{"/user.slice/user-1000.slice/user@1000.service/app.slice", "", ""},
		// Outside any user manager: a session, a system unit, the root.
		{"/user.slice/user-1000.slice/session-3.scope", "", ""},
		{"/system.slice/foo.service/user@1000.service/x.service", "", ""},
		{"/machine.slice/machine-foo.scope", "", ""},
		{"/", "", ""},
		{"", "", ""},
		// user@ only as a service, with a valid name.
		{"/user.slice/user@1000.scope/x.service", "", ""},
		{"/user.slice/user@.service/x.service", "", ""},
		{"/user.slice/userx@1000.service/x.service", "", ""},
		{"/user.slice/user-1000.slice/user@1000.service/bad name.service", "", ""},
		{"/user.slice/user-1000.slice/user@1000.service//x.service", "", ""},
	} {
		u, s := UserUnitFromCgroupPath(tc.in)
		if u != tc.unit || s != tc.sub {
			t.Errorf("UserUnitFromCgroupPath(%q) = (%q, %q), want (%q, %q)", tc.in, u, s, tc.unit, tc.sub)
		}
	}
}

func TestValidUnitName(t *testing.T) {
	long := strings.Repeat("a", 255-len(".service")) + ".service"
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"foo.service", true},
		{"machine-foo.scope", true},
		{"systemd-nspawn@foo.service", true},
		{"user@1000.service", true},
		{"getty@tty1.service", true},
		{"machine-fedora\\x2d40.scope", true},
		{"a:b_c.d-e.mount", true},
		{"dev-sda.device", true},
		{"x.slice", true},
		{"t.timer", true},
		{"p.path", true},
		{"t.target", true},
		{"a.automount", true},
		{"s.socket", true},
		{"s.swap", true},
		{long, true},
		{"a" + long, false},
		{"", false},
		{".service", false},
		{"foo", false},
		{"foo.bar", false},
		{"foo.Service", false},
		{"foo bar.service", false},
		{"foo/bar.service", false},
		{"föö.service", false},
		{"@foo.service", false},
		{"foo@.service", false},
		{"a@b@c.service", false},
		{"foo.service\n", false},
		{".hidden.scope", false},
		{"..scope", false},
	} {
		if got := ValidUnitName(tc.in); got != tc.ok {
			t.Errorf("ValidUnitName(%q) = %v, want %v", tc.in, got, tc.ok)
		}
	}
}

// The cgroup backend's table from when it had a validator of its own: the
// survivor keeps the stricter answer of the two wherever they differed.
func TestValidCgroupUnitName(t *testing.T) {
	for _, ok := range []string{"machine-foo.scope", `machine-fedora\x2d40.scope`, "a.service", "getty@tty1.service", "x:y_z.mount", "s.socket", "s.swap"} {
		if !ValidCgroupUnitName(ok) {
			t.Errorf("ValidCgroupUnitName(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", ".scope", "machine.slice", "foo", "a/b.scope", "../x.scope", "a b.scope", ".hidden.scope", "x.target",
		// Refused by ValidUnitName, accepted by the backend's old copy.
		"foo@.service", "@foo.service", "a@b@c.service"} {
		if ValidCgroupUnitName(bad) {
			t.Errorf("ValidCgroupUnitName(%q) = true", bad)
		}
	}
}

func TestParseCgroupFile(t *testing.T) {
	hybrid := "12:memory:/user.slice\n11:pids:/user.slice/x\n1:name=systemd:/user.slice/x\n0::/machine.slice/machine-a.scope\n"
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{hybrid, "/machine.slice/machine-a.scope", true},
		{"0::/\n", "/", true},
		{"0::\n", "/", true},
		{"0::/a b/c\n", "/a b/c", true},
		{"12:memory:/x\n1:name=systemd:/y\n", "", false},
		{"", "", false},
	} {
		got, ok := parseCgroupFile([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseCgroupFile(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCgroupPathErrors(t *testing.T) {
	if _, err := CgroupPath(0); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("CgroupPath(0) = %v, want EINVAL", err)
	}
	if _, err := CgroupPath(reapedPID(t)); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("CgroupPath(reaped) = %v, want ESRCH", err)
	}
}

func TestCgroup2RootHasOurCgroup(t *testing.T) {
	root, err := Cgroup2Root()
	if err != nil {
		t.Skipf("no cgroup2 on this host: %v", err)
	}
	if !slices.Contains(cgroup2Candidates, root) {
		t.Fatalf("Cgroup2Root = %q", root)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil || int64(st.Type) != unix.CGROUP2_SUPER_MAGIC {
		t.Fatalf("%s is not cgroup2 (%v)", root, err)
	}
	path, err := CgroupPath(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	procs, err := os.ReadFile(filepath.Join(root, path, "cgroup.procs"))
	if err != nil {
		t.Fatalf("our cgroup %s under %s: %v", path, root, err)
	}
	if !slices.Contains(strings.Fields(string(procs)), strconv.Itoa(os.Getpid())) {
		t.Errorf("pid %d not in %s/cgroup.procs", os.Getpid(), filepath.Join(root, path))
	}
}

// TestCgroupPathRealScope starts a child straight into a cgroup laid out like a
// machine scope with a payload subgroup and reads its unit back.
func TestCgroupPathRealScope(t *testing.T) {
	needRoot(t)
	root, err := Cgroup2Root()
	if err != nil {
		t.Skipf("no cgroup2 on this host: %v", err)
	}
	top := fmt.Sprintf("proctest-%d.slice", os.Getpid())
	rel := filepath.Join("/", top, "machine-t\\x2d1.scope", "payload")
	dir := filepath.Join(root, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Skipf("cannot create cgroup: %v", err)
	}
	t.Cleanup(func() {
		for d := dir; d != root; d = filepath.Dir(d) {
			os.Remove(d)
		}
	})
	cg, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(cg)
	cmd := startChild(t, &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cg}, "sleep", "60")
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) // before the rmdirs
	got, err := CgroupPath(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if got != rel {
		t.Fatalf("CgroupPath = %q, want %q", got, rel)
	}
	unit, sub := UnitFromCgroupPath(got)
	if unit != "machine-t\\x2d1.scope" || sub != "payload" {
		t.Errorf("UnitFromCgroupPath(%q) = (%q, %q)", got, unit, sub)
	}
}
