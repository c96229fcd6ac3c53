package tests

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The booted-container fixture: the cached Debian 12 tree of
// tests/setup/debian-tree.sh, booted with its own systemd as PID 1 by
// systemd-nspawn -b on an overlay, so that a test can change the container's
// files (and the container its own) without touching the cached tree, and
// boots in seconds without copying it.

// debianTree builds the tree once per test binary (the script returns at once
// when the cache is current) and returns its path.
var debianTree = sync.OnceValues(func() (string, error) {
	cmd := exec.Command("bash", "setup/debian-tree.sh")
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("tests/setup/debian-tree.sh: %v\n%s", err, errb.String())
	}
	return strings.TrimSpace(string(out)), nil
})

// bootOpts says how bootContainer starts the tree.
type bootOpts struct {
	// Name is the machine name (nspawn -M); empty: one unique to this run.
	Name string
	// Daemon and Bus, when both set, make nspawn register the container with
	// that daemon over that bus (--register=yes), running as startInSystemdNS
	// runs clients. Unset: --register=no.
	Daemon *daemon
	Bus    *privateBus
	// PrivateUsers is nspawn's --private-users= value; empty: none. nspawn
	// 252 cannot idmap an overlay, so it chowns the tree, which copies it up
	// into this container's overlay (a few seconds more).
	PrivateUsers string
	// Prepare, when set, is called with the container's root directory
	// before it boots: what it writes lands in this container's overlay only.
	Prepare func(root string)
	// Args are more nspawn options.
	Args []string
}

// bootedContainer is a running container with systemd as its PID 1.
type bootedContainer struct {
	t      *testing.T
	Name   string
	Root   string // the merged root directory, mounted on the host
	Upper  string // the overlay's upper directory: what changed in Root
	Scope  string // the cgroup nspawn runs in: machine.slice/Scope in each hierarchy
	Leader int    // the host PID of the container's systemd
	cmd    *exec.Cmd
	log    string // nspawn's output and the container's console
	done   chan struct{}
}

var bootSeq atomic.Int32

// bootContainer boots the cached tree and returns once the container's
// systemd reports the system running (or degraded: a unit that fails in this
// environment is the test's business, logged here); the container is torn
// down at the end of the test.
//
// nspawn runs with --keep-unit in a scope cgroup the harness makes (on a host
// without systemd nobody else would), in a private network namespace, with a
// tmpfs over /run/systemd in its own mount namespace: nothing it leaves there
// reaches the host.
func bootContainer(t *testing.T, opts bootOpts) *bootedContainer {
	t.Helper()
	needRoot(t)
	needCgroup2(t)
	needMountNS(t)
	if opts.PrivateUsers != "" {
		needUserNS(t)
	}
	if _, err := exec.LookPath("systemd-nspawn"); err != nil {
		t.Fatal("systemd-nspawn not installed: run `make deps` (systemd-container)")
	}
	tree, err := debianTree()
	if err != nil {
		t.Fatal(err)
	}
	seq := bootSeq.Add(1)
	c := &bootedContainer{t: t, Name: opts.Name, Scope: fmt.Sprintf("test-boot-%d-%d.scope", os.Getpid(), seq), done: make(chan struct{})}
	if c.Name == "" {
		c.Name = fmt.Sprintf("boot-%d-%d", os.Getpid(), seq)
	}

	dir, err := os.MkdirTemp("/tmp", "machined-boot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	c.Root, c.Upper = filepath.Join(dir, "root"), filepath.Join(dir, "upper")
	c.log = filepath.Join(dir, "console.log")
	work := filepath.Join(dir, "work")
	for _, d := range []string{c.Root, c.Upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mount("overlay", c.Root, "overlay", 0, "lowerdir="+tree+",upperdir="+c.Upper+",workdir="+work); err != nil {
		t.Fatalf("overlay over %s: %v", tree, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(c.Root, 0); err != nil {
			syscall.Unmount(c.Root, syscall.MNT_DETACH)
		}
	})
	if opts.Prepare != nil {
		opts.Prepare(c.Root)
	}

	// nspawn joins its scope in both hierarchies of a hybrid host: the
	// container's systemd reads its cgroup from name=systemd too.
	var join []string
	for _, h := range []string{cgroupRoot(t), "/sys/fs/cgroup/systemd"} {
		if _, err := os.Stat(h + "/cgroup.procs"); err != nil {
			continue
		}
		scope := filepath.Join(h, "machine.slice", c.Scope)
		if err := os.MkdirAll(scope, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { removeCgroupTreeWhenEmpty(t, scope) })
		join = append(join, "echo $$ > '"+scope+"/cgroup.procs'")
	}
	register := opts.Daemon != nil && opts.Bus != nil
	args := []string{"-b", "-D", c.Root, "-M", c.Name, "--keep-unit", "--private-network", "--console=read-only", "--register=" + strconv.FormatBool(register)}
	if opts.PrivateUsers != "" {
		args = append(args, "--private-users="+opts.PrivateUsers)
	}
	args = append(args, opts.Args...)
	prologue := "set -e; mkdir -p /run/systemd; mount -t tmpfs -o mode=0755 tmpfs /run/systemd; "
	env := []string{}
	if register {
		// systemdNS mounts the tmpfs itself, with the daemon's directories.
		prologue = "set -e; "
		env = append(env, "RT="+opts.Daemon.dir, "DBUS_SYSTEM_BUS_ADDRESS="+opts.Bus.addr, "RUN_AS_UID=")
	}
	script := prologue + strings.Join(join, "; ") + `; exec systemd-nspawn "$@"`
	if register {
		c.cmd = exec.Command("unshare", append([]string{"-m", "--propagation", "private", "sh", "-c", systemdNS, "sh", "sh", "-c", script, "sh"}, args...)...)
	} else {
		c.cmd = exec.Command("unshare", append([]string{"-m", "--propagation", "private", "sh", "-c", script, "sh"}, args...)...)
	}
	c.cmd.Env = append(append(os.Environ(), "SYSTEMD_LOG_LEVEL=info", "SYSTEMD_COLORS=0", "TERM=dumb"), env...)
	logf, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			t.Logf("container %s console:\n%s", c.Name, c.console())
		}
	})

	c.Leader = c.findLeader()
	c.waitRunning()
	return c
}

// findLeader finds the container's PID 1: nspawn's child whose innermost PID
// is 1.
func (c *bootedContainer) findLeader() int {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case <-c.done:
			c.t.Fatalf("systemd-nspawn exited before the container started:\n%s", c.console())
		default:
		}
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", c.cmd.Process.Pid))
		for _, f := range tasks {
			b, _ := os.ReadFile(f)
			for _, p := range strings.Fields(string(b)) {
				if pid, _ := strconv.Atoi(p); pid > 0 && innermostPID(pid) == 1 {
					return pid
				}
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no container PID 1 under nspawn %d:\n%s", c.cmd.Process.Pid, c.console())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// innermostPID is pid's number in its own PID namespace, 0 if unknown.
func innermostPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "NSpid:" {
			n, _ := strconv.Atoi(f[len(f)-1])
			return n
		}
	}
	return 0
}

// waitRunning waits for `systemctl is-system-running --wait` in the container
// to say running or degraded. Until PID 1 is systemd, systemctl says offline,
// and until it listens, systemctl fails to connect: both are retried.
func (c *bootedContainer) waitRunning() {
	c.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, errOut, _ := c.run("systemctl", "is-system-running", "--wait")
		switch state := strings.TrimSpace(out); state {
		case "running":
			return
		case "degraded":
			failed, _, _ := c.run("systemctl", "--failed", "--no-legend")
			c.t.Logf("container %s booted degraded; failed units:\n%s", c.Name, failed)
			return
		case "maintenance", "stopping":
			c.t.Fatalf("container %s: system %s\n%s", c.Name, state, c.console())
		default:
			select {
			case <-c.done:
				c.t.Fatalf("container %s ended while booting:\n%s", c.Name, c.console())
			default:
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("container %s not up: %q %s\n%s", c.Name, state, errOut, c.console())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// containerEnv is the environment of commands run in the container: theirs,
// not the host's.
var containerEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"LANG=C.UTF-8", "TERM=dumb", "SYSTEMD_PAGER=cat", "SYSTEMD_COLORS=0", "HOME=/root",
}

// run runs a command in all of the container's namespaces (nsenter -a, as
// root of the container) and returns stdout, stderr and its exit code.
func (c *bootedContainer) run(name string, args ...string) (string, string, int) {
	c.t.Helper()
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(c.Leader), "-a", "--", name}, args...)...)
	cmd.Env = containerEnv
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	case err != nil:
		c.t.Fatalf("nsenter %s: %v", name, err)
	}
	return out.String(), errb.String(), 0
}

// mustRun is run that fails the test unless the command succeeds; it returns
// stdout.
func (c *bootedContainer) mustRun(name string, args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(name, args...)
	if code != 0 {
		c.t.Fatalf("in %s: %s %s: exit %d\n%s%s", c.Name, name, strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// console is what nspawn and the container's console printed so far.
func (c *bootedContainer) console() string {
	b, _ := os.ReadFile(c.log)
	return string(b)
}

// stop ends the container at once: SIGKILL to its PID 1 ends its PID
// namespace, and nspawn exits. A clean shutdown is no business of the tests.
func (c *bootedContainer) stop() {
	select {
	case <-c.done:
		return // gone already: its PID may be another process's by now
	default:
	}
	if c.Leader > 0 {
		syscall.Kill(c.Leader, syscall.SIGKILL)
	}
	select {
	case <-c.done:
		return
	case <-time.After(30 * time.Second):
	}
	syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
}

// removeCgroupTreeWhenEmpty removes a cgroup tree once the processes that
// were in it are gone (the kernel empties a dead PID namespace's cgroups a
// moment after its init dies).
func removeCgroupTreeWhenEmpty(t *testing.T, dir string) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		removeCgroupTree(dir)
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("cgroup %s not removed: still in use", dir)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
