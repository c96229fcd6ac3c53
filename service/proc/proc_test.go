package proc

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestUnitFromCgroupPath(t *testing.T) {
	for _, tc := range []struct{ in, unit, sub string }{
		{"/", "", ""},
		{"", "", ""},
		{"/machine.slice/machine-foo.scope/payload", "machine-foo.scope", "payload"},
		{"/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope", "user@1000.service", "app.slice/x.scope"},
		{"/process_api/abc", "", ""},
		{"/system.slice/foo.service", "foo.service", ""},
		{"/system.slice", "", ""},
		{"/init.scope", "init.scope", ""},
		{"/system.slice/sys-devices-x.device", "", ""},
		{"/system.slice/a\\x2db.mount/sub/deeper", "a\\x2db.mount", "sub/deeper"},
		{"/system.slice/bad name.service", "", ""},
		{"/system.slice/.service", "", ""},
		{"/foo.bar", "", ""},
	} {
		u, s := UnitFromCgroupPath(tc.in)
		if u != tc.unit || s != tc.sub {
			t.Errorf("UnitFromCgroupPath(%q) = (%q,%q), want (%q,%q)", tc.in, u, s, tc.unit, tc.sub)
		}
	}
}

func TestParseIDMap(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want IDMap
		ok   bool
	}{
		{"", IDMap{}, true},
		{"         0          0 4294967295\n", IDMap{{0, 0, 4294967295}}, true},
		{"0 655360 65536\n", IDMap{{0, 655360, 65536}}, true},
		{"0 1000 1\n1 100000 65535\n", IDMap{{0, 1000, 1}, {1, 100000, 65535}}, true},
		{"0 0 0\n", nil, false},
		{"0 0\n", nil, false},
		{"0 0 1 2\n", nil, false},
		{"a b c\n", nil, false},
		{"-1 0 1\n", nil, false},
		{"2 0 4294967295\n", nil, false},
		{"1 0 4294967295\n", IDMap{{1, 0, 4294967295}}, true},
		{"0 2 4294967295\n", nil, false},
		{"0 0 4294967296\n", nil, false},
		{"4294967295 0 1\n", IDMap{{4294967295, 0, 1}}, true},
	} {
		got, err := ParseIDMap([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("ParseIDMap(%q) err = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseIDMap(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestIDMapOps(t *testing.T) {
	m := IDMap{{0, 655360, 65536}}
	if s, ok := m.Shift(); !ok || s != 655360 {
		t.Errorf("Shift = %d,%v", s, ok)
	}
	if s, ok := identityMap.Shift(); !ok || s != 0 {
		t.Errorf("identity Shift = %d,%v", s, ok)
	}
	for _, bad := range []IDMap{nil, {{1, 655360, 65536}}, {{0, 655360, 1000}}, {{0, 1000, 1}, {1, 100000, 65535}}} {
		if _, ok := bad.Shift(); ok {
			t.Errorf("Shift(%v) ok", bad)
		}
	}
	if h, ok := m.ToHost(1000); !ok || h != 656360 {
		t.Errorf("ToHost = %d,%v", h, ok)
	}
	if _, ok := m.ToHost(65536); ok {
		t.Error("ToHost out of range ok")
	}
	if i, ok := m.FromHost(656360); !ok || i != 1000 {
		t.Errorf("FromHost = %d,%v", i, ok)
	}
	if _, ok := m.FromHost(655359); ok {
		t.Error("FromHost below range ok")
	}
	if _, ok := identityMap.FromHost(5); ok {
		t.Error("FromHost should skip Outer==0 lines")
	}
	c := IDMap{{0, 0, 1}, {1, 100000, 65535}}
	if i, ok := c.FromHost(100001); !ok || i != 2 {
		t.Errorf("complex FromHost = %d,%v", i, ok)
	}
	if h, ok := identityMap.ToHost(4294967294); !ok || h != 4294967294 {
		t.Errorf("identity ToHost = %d,%v", h, ok)
	}
}

func TestParseEnvFile(t *testing.T) {
	in := "# comment\n\nNAME=\"Debian GNU/Linux\"\nID=debian\n  VERSION_ID='12'\nPRETTY=\"a \\\"quoted\\\" \\\\ \\$x\"\n1BAD=x\nno equals\nBAD-KEY=y\nEMPTY=\n"
	got, err := ParseEnvFile([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{
		{"NAME", "Debian GNU/Linux"},
		{"ID", "debian"},
		{"VERSION_ID", "12"},
		{"PRETTY", `a "quoted" \ $x`},
		{"EMPTY", ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

func startChild(t *testing.T, attr *syscall.SysProcAttr, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start child: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

func TestOpenInvalidAndDead(t *testing.T) {
	if _, err := Open(0); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Open(0) = %v", err)
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip(err)
	}
	if _, err := Open(cmd.Process.Pid); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("Open(dead) = %v, want ESRCH", err)
	}
}

func TestPidRefBasics(t *testing.T) {
	cmd := startChild(t, nil, "sleep", "30")
	p, err := Open(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.FD() < 0 || !p.Alive() {
		t.Fatal("not alive")
	}
	if err := p.Verify(); err != nil {
		t.Fatal(err)
	}
	uid, err := p.UID()
	if err != nil || uid != uint32(os.Getuid()) {
		t.Errorf("UID = %d, %v", uid, err)
	}
	var st unix.Statfs_t
	if unix.Fstatfs(p.FD(), &st) == nil && int64(st.Type) == unix.PID_FS_MAGIC && p.ID == 0 {
		t.Error("ID unset on pidfs")
	}
	if path, err := CgroupPath(p.PID); err != nil || path == "" {
		t.Errorf("CgroupPath = %q, %v", path, err)
	}
	// FromFD on a dup.
	dup, err := unix.FcntlInt(uintptr(p.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	q, err := FromFD(dup)
	if err != nil {
		t.Fatal(err)
	}
	if q.PID != p.PID || q.ID != p.ID {
		t.Errorf("FromFD = %d/%d, want %d/%d", q.PID, q.ID, p.PID, p.ID)
	}
	q.Close()
	if err := q.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if q.FD() != -1 || q.Alive() {
		t.Error("closed ref still usable")
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if p.Alive() {
		t.Error("alive after kill+reap")
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("Signal after exit = %v", err)
	}
	if err := p.Verify(); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("Verify after exit = %v", err)
	}
}

func TestExited(t *testing.T) {
	cmd := startChild(t, nil, "sleep", "30")
	p, err := Open(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ch := p.Exited()
	if p.Exited() != ch {
		t.Fatal("different channels")
	}
	select {
	case <-ch:
		t.Fatal("Exited fired while alive")
	case <-time.After(300 * time.Millisecond):
	}
	cmd.Process.Kill()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("Exited did not fire")
	}
	cmd.Wait()
}

func TestExitedClose(t *testing.T) {
	cmd := startChild(t, nil, "sleep", "30")
	p, err := Open(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	ch := p.Exited()
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	<-done
	p.Close()
	select {
	case <-ch:
		t.Fatal("Exited fired on Close")
	case <-time.After(200 * time.Millisecond):
	}
}

func TestReadIDMaps(t *testing.T) {
	needRoot(t)
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 655360, Size: 65536}}
	cmd := startChild(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: m}, "sleep", "30")
	p, err := Open(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	u, g, err := ReadIDMaps(p)
	if err != nil {
		t.Fatal(err)
	}
	want := IDMap{{0, 655360, 65536}}
	if !reflect.DeepEqual(u, want) || !reflect.DeepEqual(g, want) {
		t.Errorf("maps = %v %v", u, g)
	}
	if s, ok := u.Shift(); !ok || s != 655360 {
		t.Errorf("Shift = %d %v", s, ok)
	}
	self, err := Open(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	u, _, err = ReadIDMaps(self)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := u.Shift(); !ok || s != 0 {
		t.Errorf("host Shift = %d %v (%v)", s, ok, u)
	}
}

func TestOSRelease(t *testing.T) {
	cmd := startChild(t, nil, "sleep", "30")
	p, err := Open(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	osr, err := OSRelease(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(osr) == 0 {
		t.Fatal("empty os-release")
	}
	host, err := HostOSRelease()
	if err != nil || !slices.Equal(host, osr) {
		t.Errorf("host os-release %v (%v) differs from %v", host, err, osr)
	}
}

func TestOSReleaseInRoot(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/real"), []byte("ID=inroot\nNAME=\"In Root\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/real", filepath.Join(dir, "etc/os-release")); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	got, err := osReleaseAt(fd)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ID=inroot", "NAME=In Root"}; !slices.Equal(got, want) {
		t.Errorf("got %q want %q", got, want)
	}
	empty := t.TempDir()
	efd, err := unix.Open(empty, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	if _, err := osReleaseAt(efd); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("empty root: %v", err)
	}
}

func TestAddresses(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("no nsenter")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip")
	}
	cmd := startChild(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}, "sleep", "30")
	p, err := Open(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if out, err := exec.Command("nsenter", "-t", itoa(p.PID), "-n", "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("nsenter: %v %s", err, out)
	}
	shared, err := SharesHostNetNS(p)
	if err != nil || shared {
		t.Fatalf("SharesHostNetNS = %v %v", shared, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := Addresses(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range addrs {
		if a.Family == unix.AF_INET && net.IP(a.Addr).Equal(net.IPv4(127, 0, 0, 1)) {
			found = true
		}
	}
	if !found {
		t.Errorf("127.0.0.1 not in %v", addrs)
	}
	if _, err := HostAddresses(ctx); err != nil {
		t.Error(err)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if _, err := Addresses(cctx, p); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	}
}

func TestBootIDAndCgroupRoot(t *testing.T) {
	id, err := BootID()
	if err != nil || len(id) != 32 {
		t.Errorf("BootID = %q %v", id, err)
	}
	if _, err := os.Stat("/sys/fs/cgroup"); err == nil {
		if r, err := Cgroup2Root(); err != nil {
			t.Logf("Cgroup2Root: %v", err)
		} else {
			t.Logf("cgroup2 root %s", r)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func FuzzParseIDMap(f *testing.F) {
	for _, s := range []string{"0 0 4294967295\n", "0 655360 65536\n", "0 1000 1\n1 100000 65535\n", "x", "0 0 0", "4294967295 4294967295 1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseIDMap(data)
		if err != nil {
			return
		}
		for _, l := range m {
			if l.Count == 0 || uint64(l.Inner)+uint64(l.Count) > 1<<32 || uint64(l.Outer)+uint64(l.Count) > 1<<32 {
				t.Fatalf("invalid line accepted: %+v", l)
			}
			h, ok := m.ToHost(l.Inner)
			if !ok {
				t.Fatalf("ToHost(%d) failed", l.Inner)
			}
			_ = h
			m.FromHost(l.Outer)
		}
		m.Shift()
	})
}
