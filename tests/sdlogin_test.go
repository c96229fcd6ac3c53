package tests

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/machined-go/machined/client"
)

// The state files are an ABI: libsystemd's sd-login reads them without asking
// the daemon. A C program linked against the host's libsystemd (252) reads
// them as ps and other library users do, in a private mount namespace where
// the daemon's state directory is /run/systemd/machines (the path is fixed in
// the library; the host's own stays untouched).

// sdLoginProgram compiles tests/testdata/sdlogin.c.
func sdLoginProgram(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Fatal("gcc not installed: run `make deps`")
	}
	bin := filepath.Join(t.TempDir(), "sdlogin")
	if out, err := exec.Command("gcc", "-Wall", "-Werror", "-o", bin, "testdata/sdlogin.c", "-lsystemd").CombinedOutput(); err != nil {
		t.Fatalf("compiling the sd-login reader (libsystemd-dev from `make deps`): %v\n%s", err, out)
	}
	return bin
}

// inStateNS runs a command where /run/systemd/machines is d's state directory.
func inStateNS(t *testing.T, d *daemon, name string, args ...string) string {
	t.Helper()
	needMountNS(t)
	out, errOut, code := run(t, []string{"RT=" + d.dir, "RUN_AS_UID="}, nil, "unshare", append([]string{"-m", "--propagation", "private", "sh", "-c", systemdNS, "sh", name}, args...)...)
	if code != 0 {
		t.Fatalf("%s %v: exit %d\n%s%s", name, args, code, out, errOut)
	}
	return out
}

// sdLoginMonitor runs `sdlogin monitor` and hands over its wake-up lines.
type sdLoginMonitor struct {
	t     *testing.T
	lines chan string
}

func startSdLoginMonitor(t *testing.T, d *daemon, prog string) *sdLoginMonitor {
	t.Helper()
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", systemdNS, "sh", prog, "monitor")
	cmd.Env = append(os.Environ(), "RT="+d.dir, "RUN_AS_UID=")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	m := &sdLoginMonitor{t: t, lines: make(chan string, 1024)}
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			m.lines <- s.Text()
		}
		close(m.lines)
	}()
	if l := m.next(); l != "ready" {
		t.Fatalf("monitor said %q", l)
	}
	return m
}

func (m *sdLoginMonitor) next() string {
	m.t.Helper()
	select {
	case l, ok := <-m.lines:
		if !ok {
			m.t.Fatal("the monitor exited")
		}
		return l
	case <-time.After(10 * time.Second):
		m.t.Fatal("the monitor did not wake")
	}
	return ""
}

// waitFor reads wake-ups until one shows the machine (present) or no longer
// shows it: every registration and removal must wake the monitor.
func (m *sdLoginMonitor) waitFor(name string, present bool) {
	m.t.Helper()
	for {
		l := m.next()
		names := strings.Fields(l)
		if len(names) == 0 || names[0] != "wake" {
			m.t.Fatalf("monitor line %q", l)
		}
		if slices.Contains(names[1:], name) == present {
			return
		}
	}
}

func TestSdLoginReaders(t *testing.T) {
	needCgroup2(t)
	prog := sdLoginProgram(t)
	d := startDaemon(t, "--units", "cgroup")
	mon := startSdLoginMonitor(t, d, prog)
	// Names unique to this run: the cgroup back end's scopes live in the
	// host's machine.slice, shared with anything else running.
	ctName, vmName := fmt.Sprintf("sdl-ct-%d", os.Getpid()), fmt.Sprintf("sdl-vm-%d", os.Getpid())

	// A container with a scope the cgroup back end makes and two interfaces,
	// and a VM without a unit.
	ct := spawnLeader(t)
	registerReq(t, d, client.RegisterRequest{Name: ctName, Class: client.ClassContainer, LeaderPID: ct.pid, AllocateUnit: true, IfIndices: []int{1, 7}})
	mon.waitFor(ctName, true)
	vm := spawnLeader(t)
	registerReq(t, d, client.RegisterRequest{Name: vmName, Class: client.ClassVM, LeaderPID: vm.pid})
	mon.waitFor(vmName, true)

	// sd_get_machine_names, sd_machine_get_class and sd_machine_get_ifindices
	// agree with List.
	want := map[string]string{ctName: "1,7", vmName: "-"}
	c := dialClient(t, d)
	listed := map[string]client.Class{}
	for m, err := range c.List(context.Background(), client.MetadataNo) {
		if err != nil {
			t.Fatal(err)
		}
		if m.Name != ".host" {
			listed[m.Name] = m.Class
		}
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(inStateNS(t, d, prog, "list")), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("sdlogin list line %q", line)
		}
		if string(listed[f[0]]) != f[1] {
			t.Errorf("%s: class %s, List says %q", f[0], f[1], listed[f[0]])
		}
		got[f[0]] = f[2]
	}
	if len(got) != len(listed) {
		t.Errorf("sd-login sees %v, List %v", got, listed)
	}
	for name, ifs := range want {
		if got[name] != ifs {
			t.Errorf("%s: interfaces %q, want %q", name, got[name], ifs)
		}
	}

	// sd_pid_get_machine_name and ps -o machine: the leader and another process
	// in the machine's scope belong to it; a process outside any machine's unit
	// (the VM's leader has none) to no machine.
	m, err := getOne(t, d, ctName)
	if err != nil {
		t.Fatal(err)
	}
	scope, err := os.Open(filepath.Join(cgroupRoot(t), "machine.slice", m.Unit))
	if err != nil {
		t.Fatal(err)
	}
	defer scope.Close()
	inScope := spawnLeaderWith(t, &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(scope.Fd())})
	pids := []int{ct.pid, inScope.pid, vm.pid}
	wantName := map[int]string{ct.pid: ctName, inScope.pid: ctName, vm.pid: fmt.Sprint(-int(syscall.ENODATA))}
	args := []string{"pid"}
	for _, p := range pids {
		args = append(args, strconv.Itoa(p))
	}
	for _, line := range strings.Split(strings.TrimSpace(inStateNS(t, d, prog, args...)), "\n") {
		f := strings.Fields(line)
		p, _ := strconv.Atoi(f[0])
		if len(f) != 2 || f[1] != wantName[p] {
			t.Errorf("sd_pid_get_machine_name: %q, want %s %s", line, f[0], wantName[p])
		}
	}
	ps := inStateNS(t, d, "ps", "-o", "pid=,machine=", "-p", fmt.Sprintf("%d,%d,%d", ct.pid, inScope.pid, vm.pid))
	for _, line := range strings.Split(strings.TrimSpace(ps), "\n") {
		f := strings.Fields(line)
		p, _ := strconv.Atoi(f[0])
		want := wantName[p]
		if p == vm.pid {
			want = "-"
		}
		if len(f) != 2 || f[1] != want {
			t.Errorf("ps -o pid,machine: %q, want machine %s", line, want)
		}
	}

	// Removal wakes the monitor too, whichever way the machine goes.
	unregister(t, d, vmName)
	mon.waitFor(vmName, false)
	ct.kill()
	mon.waitFor(ctName, false)
}
