package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func TestParseIDMap(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want IDMap
		ok   bool
	}{
		{"", IDMap{}, true},
		{"\n\n", IDMap{}, true},
		{"         0          0 4294967295\n", IDMap{{0, 0, 4294967295}}, true},
		{"0 655360 65536\n", IDMap{{0, 655360, 65536}}, true},
		{"0 655360 65536", IDMap{{0, 655360, 65536}}, true}, // no final newline
		{"\t0\t655360\t65536\t\n", IDMap{{0, 655360, 65536}}, true},
		{"0 1000 1\n1 100000 65535\n", IDMap{{0, 1000, 1}, {1, 100000, 65535}}, true},
		{"1 0 4294967295\n", IDMap{{1, 0, 4294967295}}, true},
		{"4294967295 0 1\n", IDMap{{4294967295, 0, 1}}, true},
		{"0 4294967295 1\n", IDMap{{0, 4294967295, 1}}, true},
		{"0 0 4294967296\n", nil, false}, // count beyond 32 bits
		{"2 0 4294967295\n", nil, false}, // inner+count > 2^32
		{"0 2 4294967295\n", nil, false}, // outer+count > 2^32
		{"4294967295 0 2\n", nil, false},
		{"0 4294967295 2\n", nil, false},
		{"0 0 0\n", nil, false}, // zero count
		{"0 0\n", nil, false},
		{"0 0 1 2\n", nil, false},
		{"0 0 1\ngarbage\n", nil, false},
		{"a b c\n", nil, false},
		{"-1 0 1\n", nil, false},
		{"+1 0 1\n", nil, false},
		{"0x10 0 1\n", nil, false},
		{"0 0 1.5\n", nil, false},
		{"99999999999999999999 0 1\n", nil, false},
	} {
		got, err := ParseIDMap([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("ParseIDMap(%q) err = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if !tc.ok {
			if !errors.Is(err, syscall.EINVAL) {
				t.Errorf("ParseIDMap(%q) err = %v, want EINVAL", tc.in, err)
			}
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseIDMap(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestIDMapShift(t *testing.T) {
	for _, tc := range []struct {
		m     IDMap
		shift uint32
		ok    bool
	}{
		{IDMap{{0, 655360, 65536}}, 655360, true},
		{IDMap{{0, 65536, 65534}}, 65536, true}, // the smallest count that still maps nobody
		{identity(), 0, true},
		{IDMap{{0, 0, 65536}}, 0, true},
		{nil, 0, false},
		{IDMap{}, 0, false},
		{IDMap{{1, 655360, 65536}}, 0, false},
		{IDMap{{0, 655360, 65533}}, 0, false},
		{IDMap{{0, 1000, 1}, {1, 100000, 65535}}, 0, false},
		{IDMap{{0, 655360, 65536}, {65536, 0, 1}}, 0, false},
	} {
		s, ok := tc.m.Shift()
		if s != tc.shift || ok != tc.ok {
			t.Errorf("%v.Shift() = %d, %v; want %d, %v", tc.m, s, ok, tc.shift, tc.ok)
		}
	}
}

func TestIDMapIdentity(t *testing.T) {
	for _, tc := range []struct {
		m  IDMap
		ok bool
	}{
		{nil, true},
		{IDMap{}, true},
		{identity(), true},
		{IDMap{{0, 0, 65536}}, false},
		{IDMap{{0, 655360, 65536}}, false},
		{IDMap{{0, 0, 4294967295}, {0, 0, 1}}, false},
	} {
		if got := tc.m.Identity(); got != tc.ok {
			t.Errorf("%v.Identity() = %v, want %v", tc.m, got, tc.ok)
		}
	}
}

func TestIDMapTranslate(t *testing.T) {
	simple := IDMap{{0, 655360, 65536}}
	complexMap := IDMap{{0, 0, 1}, {1, 100000, 65535}, {100000, 200000, 10}}
	type probe struct {
		id   uint32
		want uint32
		ok   bool
	}
	toHost := []struct {
		m  IDMap
		ps []probe
	}{
		{simple, []probe{{0, 655360, true}, {1000, 656360, true}, {65535, 720895, true}, {65536, 0, false}}},
		{identity(), []probe{{0, 0, true}, {4294967294, 4294967294, true}, {4294967295, 0, false}}},
		{complexMap, []probe{{0, 0, true}, {1, 100000, true}, {65535, 165534, true}, {65536, 0, false}, {100009, 200009, true}, {100010, 0, false}}},
		{nil, []probe{{0, 0, false}}},
	}
	for _, tc := range toHost {
		for _, p := range tc.ps {
			if got, ok := tc.m.ToHost(p.id); got != p.want || ok != p.ok {
				t.Errorf("%v.ToHost(%d) = %d, %v; want %d, %v", tc.m, p.id, got, ok, p.want, p.ok)
			}
		}
	}
	fromHost := []struct {
		m  IDMap
		ps []probe
	}{
		{simple, []probe{{655360, 0, true}, {656360, 1000, true}, {720895, 65535, true}, {655359, 0, false}, {720896, 0, false}}},
		// Lines onto host 0.. never own host IDs: a plain container owns nobody.
		{identity(), []probe{{0, 0, false}, {5, 0, false}, {1000, 0, false}}},
		{complexMap, []probe{{0, 0, false}, {100000, 1, true}, {165534, 65535, true}, {200005, 100005, true}}},
	}
	for _, tc := range fromHost {
		for _, p := range tc.ps {
			if got, ok := tc.m.FromHost(p.id); got != p.want || ok != p.ok {
				t.Errorf("%v.FromHost(%d) = %d, %v; want %d, %v", tc.m, p.id, got, ok, p.want, p.ok)
			}
		}
	}
}

func TestReadIDMapsUserNS(t *testing.T) {
	needRoot(t)
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 655360, Size: 65536}}
	cmd := startChild(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: m}, "sleep", "60")
	p := openChild(t, cmd)
	u, g, err := ReadIDMaps(p)
	if err != nil {
		t.Fatal(err)
	}
	want := IDMap{{0, 655360, 65536}}
	if !reflect.DeepEqual(u, want) || !reflect.DeepEqual(g, want) {
		t.Fatalf("maps = %v / %v, want %v", u, g, want)
	}
	if s, ok := u.Shift(); !ok || s != 655360 {
		t.Errorf("Shift = %d, %v", s, ok)
	}
	if h, ok := u.ToHost(65534); !ok || h != 655360+65534 {
		t.Errorf("nobody maps to %d, %v", h, ok)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, _, err := ReadIDMaps(p); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("ReadIDMaps after reap = %v, want ESRCH", err)
	}
}

// TestReadIDMapsLong uses a map with hundreds of lines, so the file is longer
// than one read and procfs hands it over in several.
func TestReadIDMapsLong(t *testing.T) {
	needRoot(t)
	var um, gm []syscall.SysProcIDMap
	var want IDMap
	// What we write must stay below a page; what the kernel prints back
	// (33 bytes a line) is well above one.
	for i := range 200 {
		um = append(um, syscall.SysProcIDMap{ContainerID: i * 10, HostID: 100000 + i*10, Size: 10})
		want = append(want, IDMapLine{uint32(i * 10), uint32(100000 + i*10), 10})
	}
	gm = append(gm, syscall.SysProcIDMap{ContainerID: 0, HostID: 100000, Size: 2000})
	p := openChild(t, startChild(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: um, GidMappings: gm}, "sleep", "60"))
	u, g, err := ReadIDMaps(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(u, want) {
		t.Fatalf("uid map has %d lines, want %d (first %v)", len(u), len(want), u[:min(3, len(u))])
	}
	if !reflect.DeepEqual(g, IDMap{{0, 100000, 2000}}) {
		t.Errorf("gid map = %v", g)
	}
	if _, ok := u.Shift(); ok {
		t.Error("Shift of a 200-line map succeeded")
	}
	if in, ok := u.FromHost(101995); !ok || in != 1995 {
		t.Errorf("FromHost = %d, %v", in, ok)
	}
}

func TestReadIDMapsHost(t *testing.T) {
	for _, pid := range []int{os.Getpid(), 0} {
		if pid == 0 {
			// A child in our namespace takes the same shortcut.
			cmd := startChild(t, nil, "sleep", "60")
			pid = cmd.Process.Pid
		}
		p, err := Open(pid)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		u, g, err := ReadIDMaps(p)
		if err != nil {
			t.Fatal(err)
		}
		self, _ := os.ReadFile("/proc/self/uid_map")
		parsed, _ := ParseIDMap(self)
		if !reflect.DeepEqual(u, parsed) || !reflect.DeepEqual(g, parsed) {
			t.Errorf("pid %d maps = %v / %v, want ours %v", pid, u, g, parsed)
		}
		if s, ok := u.Shift(); !ok || s != 0 {
			t.Errorf("host Shift = %d, %v", s, ok)
		}
		// Fresh copies: mutating one result must not change the next.
		u[0].Outer = 42
		u2, _, _ := ReadIDMaps(p)
		if u2[0].Outer != 0 {
			t.Fatal("ReadIDMaps returned a shared identity map")
		}
	}
}

func FuzzParseIDMap(f *testing.F) {
	for _, s := range []string{
		"0 0 4294967295\n", "0 655360 65536\n", "0 1000 1\n1 100000 65535\n",
		"x", "0 0 0", "4294967295 4294967295 1", "1 2\n", " \t\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseIDMap(data)
		if err != nil {
			if m != nil {
				t.Fatalf("error %v with a non-nil map", err)
			}
			return
		}
		// Whatever parses must round-trip through its text form.
		var b strings.Builder
		for _, l := range m {
			if l.Count == 0 || uint64(l.Inner)+uint64(l.Count) > 1<<32 || uint64(l.Outer)+uint64(l.Count) > 1<<32 {
				t.Fatalf("invalid line accepted: %+v", l)
			}
			fmt.Fprintf(&b, "%d %d %d\n", l.Inner, l.Outer, l.Count)
		}
		again, err := ParseIDMap([]byte(b.String()))
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("round trip of %v: %v, %v", m, again, err)
		}
		// Every mapped boundary ID translates, and back again where owned. The
		// kernel never writes overlapping lines; only then is that an inverse.
		inverse := !overlapping(m)
		for _, l := range m {
			for _, in := range []uint32{l.Inner, l.Inner + l.Count - 1} {
				h, ok := m.ToHost(in)
				if !ok {
					t.Fatalf("ToHost(%d) failed for %v", in, m)
				}
				if back, ok := m.FromHost(h); ok && inverse {
					if h2, _ := m.ToHost(back); h2 != h {
						t.Fatalf("FromHost(%d) = %d, which maps to %d", h, back, h2)
					}
				}
			}
		}
		if s, ok := m.Shift(); ok && (len(m) != 1 || s != m[0].Outer) {
			t.Fatalf("Shift of %v = %d", m, s)
		}
	})
}

// overlapping reports whether two lines share inner or outer IDs.
func overlapping(m IDMap) bool {
	hit := func(a, b, n, k uint32) bool {
		return uint64(a) < uint64(b)+uint64(k) && uint64(b) < uint64(a)+uint64(n)
	}
	for i, x := range m {
		for _, y := range m[i+1:] {
			if hit(x.Inner, y.Inner, x.Count, y.Count) || hit(x.Outer, y.Outer, x.Count, y.Count) {
				return true
			}
		}
	}
	return false
}

// Telling whether a process shares our (initial) user namespace allocates
// nothing: every container registration asks. A process in a user namespace
// of its own does not share it.
func TestInInitialUserNS(t *testing.T) {
	if !weAreInitialUserNS() {
		t.Skip("not in the initial user namespace")
	}
	self := os.Getpid()
	if !inInitialUserNS(self) {
		t.Fatal("our own process is not in our user namespace")
	}
	if allocs := testing.AllocsPerRun(100, func() { inInitialUserNS(self) }); allocs != 0 {
		t.Fatalf("%v allocations per check, want 0", allocs)
	}
	if inInitialUserNS(1 << 30) {
		t.Error("a PID that does not exist is reported in our user namespace")
	}
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
	cmd := exec.Command("sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}}
	if err := cmd.Start(); err != nil {
		t.Skipf("no user namespaces here: %v", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if inInitialUserNS(cmd.Process.Pid) {
		t.Error("a process in a user namespace of its own is reported in ours")
	}
}
