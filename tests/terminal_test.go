package tests

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/client"
)

// startBusyboxContainer runs systemd-nspawn 252 on a busybox tree, registered
// with d over bus, and returns the leader's PID once the machine is there.
// The container has its own /dev/pts instance, as every nspawn container.
func startBusyboxContainer(t *testing.T, d *daemon, bus *privateBus, name string, opts ...string) int {
	t.Helper()
	needCgroup2(t)
	if _, err := exec.LookPath("systemd-nspawn"); err != nil {
		t.Fatal("systemd-nspawn not installed: run `make deps` (systemd-container)")
	}
	root := makeRootfs(t)
	w := watchSignals(t, bus)
	unit := "machine-" + strings.ReplaceAll(name, "-", `\x2d`) + ".scope"
	t.Cleanup(func() { removeCgroupTree("/sys/fs/cgroup/systemd/machine.slice/" + unit) })
	args := append([]string{"--register=yes", "-M", name, "-D", root, "--console=pipe", "-q"}, opts...)
	_, _, done := startInSystemdNS(t, d, bus, "systemd-nspawn", append(args, "/bin/sleep", "100000")...)
	w.wait("MachineNew", name)
	// Killing nspawn leaves its payload running: end the machine first.
	t.Cleanup(func() {
		c, err := client.Dial(context.Background(), d.sock())
		if err == nil {
			c.Terminate(context.Background(), client.ByName(name))
			c.Close()
		}
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("nspawn of %s did not exit", name)
		}
	})
	m, err := getOne(t, d, name)
	if err != nil || m.Leader == nil {
		t.Fatalf("machine %s: %+v %v", name, m, err)
	}
	return m.Leader.PID
}

// rootOf is the host uid the root of pid's user namespace maps to.
func rootOf(t *testing.T, pid int) uint32 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		var inner, outer, count uint32
		if n, _ := fmt.Sscan(line, &inner, &outer, &count); n == 3 && inner == 0 {
			return outer
		}
	}
	t.Fatalf("pid %d: root not mapped: %s", pid, b)
	return 0
}

// pollable returns f as a file the Go poller watches, so that reads can have
// a deadline: a terminal that never says what a test waits for fails the
// test instead of hanging it.
func pollable(t *testing.T, f *os.File) *os.File {
	t.Helper()
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	p := os.NewFile(uintptr(fd), f.Name())
	p.SetReadDeadline(time.Now().Add(time.Minute))
	t.Cleanup(func() { p.Close() })
	return p
}

// readUntil reads from r until want shows up.
func readUntil(t *testing.T, r io.Reader, want string) string {
	t.Helper()
	return readUntilOr(t, r, want, false)
}

// readAcrossHangups is readUntil on a master whose terminal is hung up on
// purpose meanwhile (a getty's service does, before the getty opens it
// again): EIO then means "nobody on the other side yet", as the clients that
// forward terminals treat it.
func readAcrossHangups(t *testing.T, r io.Reader, want string) string {
	t.Helper()
	return readUntilOr(t, r, want, true)
}

func readUntilOr(t *testing.T, r io.Reader, want string, acrossHangups bool) string {
	t.Helper()
	var got strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(got.String(), want) {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		if acrossHangups && errors.Is(err, syscall.EIO) {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatalf("reading for %q: %v; got %q", want, err, got.String())
		}
	}
	return got.String()
}

// A PTY opened through Varlink's Open comes from the container's own devpts:
// its path names a terminal that exists inside the container (reached through
// the leader's root, the container's mounts included), and bytes flow both
// ways between that terminal and the master the client received. The root
// directory fd shows the container's tree. Both for a plain container and one
// with its own user namespace, whose terminal must belong to a uid it maps.
func TestVarlinkOpenTTYAndRootDirectory(t *testing.T) {
	d, bus := startBusDaemon(t, "--units", "auto", "--stop-timeout", "1s")
	c := dialClient(t, d)
	sfx := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name string
		opts []string
	}{
		{name: "pty-plain-" + sfx},
		{name: "pty-userns-" + sfx, opts: []string{"--private-users=pick"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.opts) > 0 {
				needUserNS(t)
			}
			leader := startBusyboxContainer(t, d, bus, tc.name, tc.opts...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			master, path, err := c.Open(ctx, client.ByName(tc.name), client.OpenRequest{Mode: client.OpenTTY})
			if err != nil {
				t.Fatalf("Open tty: %v", err)
			}
			master = pollable(t, master)
			if !strings.HasPrefix(path, "/dev/pts/") {
				t.Fatalf("pty path %q", path)
			}
			inside := fmt.Sprintf("/proc/%d/root%s", leader, path)
			tty, err := os.OpenFile(inside, os.O_RDWR|unix.O_NOCTTY, 0)
			if err != nil {
				t.Fatalf("the terminal is not in the container: %v", err)
			}
			defer tty.Close()
			var st unix.Stat_t
			if err := unix.Fstat(int(tty.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			if shift := rootOf(t, leader); st.Uid != shift {
				t.Errorf("terminal owned by uid %d, want the container's root %d", st.Uid, shift)
			}
			if _, err := tty.WriteString("from-inside\n"); err != nil {
				t.Fatal(err)
			}
			readUntil(t, master, "from-inside")
			if _, err := master.WriteString("from-client\n"); err != nil {
				t.Fatal(err)
			}
			readUntil(t, tty, "from-client")

			root, err := c.OpenRootDirectory(ctx, client.ByName(tc.name))
			if err != nil {
				t.Fatalf("OpenRootDirectory: %v", err)
			}
			defer root.Close()
			fd, err := unix.Openat(int(root.Fd()), "usr/lib/os-release", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatalf("os-release through the root fd: %v", err)
			}
			osr := os.NewFile(uintptr(fd), "os-release")
			defer osr.Close()
			line, _ := bufio.NewReader(osr).ReadString('\n')
			if line != "NAME=\"TestBox\"\n" {
				t.Errorf("os-release through the root fd starts %q", line)
			}
		})
	}
}
