package tests

import (
	"context"
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
	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/client"
)

// bookwormTree is the cached Debian 12 tree with systemd, dbus and login
// (tests/setup/debian-tree.sh builds it).
func bookwormTree(t *testing.T) string {
	t.Helper()
	tree := os.Getenv("MACHINED_TEST_TREE")
	if tree == "" {
		tree = "/var/cache/machined-tests/bookworm"
	}
	if _, err := os.Stat(filepath.Join(tree, "usr/lib/systemd/systemd")); err != nil {
		t.Skipf("no booted-container tree at %s (tests/setup/debian-tree.sh builds it): %v", tree, err)
	}
	return tree
}

// bootDebian boots the cached tree, on an overlay of its own, with
// systemd-nspawn -b registered over bus with the daemon whose runtime
// directory is d.dir (ours, or upstream's), and returns the container's PID 1
// once its system is up. The container goes when the test ends. nspawn runs
// with --keep-unit in a scope the test makes, so that a daemon without a unit
// back end (upstream's without systemd) can register it too.
func bootDebian(t *testing.T, d *daemon, bus *privateBus, name string, opts ...string) int {
	t.Helper()
	needCgroup2(t)
	tree := bookwormTree(t)
	dir, err := os.MkdirTemp("/tmp", "machined-pty-boot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	root, upper, work := filepath.Join(dir, "root"), filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	for _, p := range []string{root, upper, work} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mount("overlay", root, "overlay", 0, "lowerdir="+tree+",upperdir="+upper+",workdir="+work); err != nil {
		t.Fatalf("overlay over %s: %v", tree, err)
	}
	t.Cleanup(func() {
		if syscall.Unmount(root, 0) != nil {
			syscall.Unmount(root, syscall.MNT_DETACH)
		}
	})
	scope := "test-pty-" + name + ".scope"
	var join []string
	for _, h := range []string{cgroupRoot(t), "/sys/fs/cgroup/systemd"} {
		sd := h + "/machine.slice/" + scope
		if err := os.MkdirAll(sd, 0o755); err != nil {
			if h == cgroupRoot(t) {
				t.Fatal(err)
			}
			continue
		}
		t.Cleanup(func() { removeCgroupTree(sd) })
		join = append(join, "echo $$ > '"+sd+"/cgroup.procs'")
	}
	w := watchSignals(t, bus)
	args := append([]string{"-c", strings.Join(join, "; ") + `; exec systemd-nspawn "$@"`, "sh",
		"-b", "-D", root, "-M", name, "--keep-unit", "--register=yes", "--private-network", "--console=read-only", "-q"}, opts...)
	_, _, done := startInSystemdNS(t, d, bus, "sh", args...)
	w.wait("MachineNew", name)
	var leader uint32
	obj := dbusConn(t, bus).Object(m1Dest, dbus.ObjectPath(m1Path+"/machine/"+escapeLabel(name)))
	if err := obj.StoreProperty(m1Machine+".Leader", &leader); err != nil || leader == 0 {
		t.Fatalf("leader of %s: %d %v", name, leader, err)
	}
	t.Cleanup(func() {
		syscall.Kill(int(leader), syscall.SIGKILL)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("nspawn of %s did not exit", name)
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		cmd := exec.Command("nsenter", "-t", strconv.Itoa(int(leader)), "-a", "systemctl", "is-system-running", "--wait")
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_COLORS=0"}
		out, _ := cmd.Output()
		switch strings.TrimSpace(string(out)) {
		case "running", "degraded":
			return int(leader)
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s not up: %q", name, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// machinectlOnTerminal starts machinectl (as inSystemdNS runs it) with a
// pseudo terminal of the host as its controlling terminal and stdio, and
// returns the terminal's master; machinectl is killed when the test ends.
func machinectlOnTerminal(t *testing.T, d *daemon, bus *privateBus, args ...string) *os.File {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	cmd := exec.Command("unshare", append([]string{"-m", "--propagation", "private", "sh", "-c", systemdNS, "sh", "machinectl"}, args...)...)
	cmd.Env = append(os.Environ(), "RT="+d.dir, "DBUS_SYSTEM_BUS_ADDRESS="+bus.addr, "RUN_AS_UID=", "TERM=dumb")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	return pollable(t, master)
}

// machinectl 252, through the D-Bus shim, gets a shell and a login prompt in
// a booted Debian container, as upstream's: the shell runs as a transient
// service of the container's systemd, which the daemon asked over the
// container's own bus, as the container's root, also when that root is a
// shifted uid (--private-users=pick). Varlink's Open does the same through
// the Go client.
func TestShellAndLoginIntoBootedContainer(t *testing.T) {
	d, bus := startBusDaemon(t, "--units", "none")
	sfx := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name string
		opts []string
	}{
		{name: "sh-plain-" + sfx},
		{name: "sh-userns-" + sfx, opts: []string{"--private-users=pick"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.opts) > 0 {
				needUserNS(t)
			}
			leader := bootDebian(t, d, bus, tc.name, tc.opts...)
			hostname, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/hostname", leader))
			if err != nil {
				t.Fatal(err)
			}
			mctl := func(args ...string) (string, string, int) {
				t.Helper()
				return inSystemdNS(t, d, bus, -1, "machinectl", append([]string{"--no-pager", "-q"}, args...)...)
			}
			out, errOut, code := mctl("shell", tc.name, "/bin/sh", "-c", "id; hostname; tty")
			if code != 0 {
				t.Fatalf("machinectl shell: %d %s %s", code, out, errOut)
			}
			for _, want := range []string{"uid=0(root) gid=0(root)", strings.TrimSpace(string(hostname)), "/dev/pts/"} {
				if !strings.Contains(out, want) {
					t.Errorf("machinectl shell output lacks %q:\n%s", want, out)
				}
			}
			out, errOut, code = mctl("shell", "--uid=nobody", "--setenv=PTYTEST=hello", tc.name, "/bin/sh", "-c", "id -un; echo $PTYTEST")
			if code != 0 || !strings.Contains(out, "nobody") || !strings.Contains(out, "hello") {
				t.Errorf("machinectl shell --uid --setenv: %d\n%s%s", code, out, errOut)
			}

			// machinectl login, on a terminal of ours: the container's getty prompts.
			readAcrossHangups(t, machinectlOnTerminal(t, d, bus, "login", tc.name), strings.TrimSpace(string(hostname))+" login:")

			// Varlink, through the Go client: a shell whose output arrives on the master.
			c := dialClient(t, d)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			master, path, err := c.Open(ctx, client.ByName(tc.name), client.OpenRequest{
				Mode: client.OpenShell, Path: "/bin/sh", Args: []string{"sh", "-c", "echo ready; read x; echo got-$x-on-$(tty)"},
			})
			if err != nil {
				t.Fatalf("Varlink Open shell: %v", err)
			}
			master = pollable(t, master)
			// The service resets the terminal when it starts, dropping what
			// was typed before: answer once the shell asks.
			readUntil(t, master, "ready")
			if _, err := master.WriteString("ping\n"); err != nil {
				t.Fatal(err)
			}
			readUntil(t, master, "got-ping-on-"+path)

			// A login prompt: the container's getty on a terminal of its own.
			master, path, err = c.Open(ctx, client.ByName(tc.name), client.OpenRequest{Mode: client.OpenLogin})
			if err != nil {
				t.Fatalf("Varlink Open login: %v", err)
			}
			t.Cleanup(func() {
				if t.Failed() {
					cmd := exec.Command("nsenter", "-t", strconv.Itoa(leader), "-a", "journalctl", "--no-pager", "-n", "60")
					cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_COLORS=0"}
					out, _ := cmd.CombinedOutput()
					t.Logf("journal of %s:\n%s", tc.name, out)
				}
			})
			readAcrossHangups(t, pollable(t, master), strings.TrimSpace(string(hostname))+" login:")
			_ = path
		})
	}
}
