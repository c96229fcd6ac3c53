package tests

import (
	"context"
	"fmt"
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
		name   string
		userns string
	}{
		{name: "sh-plain-" + sfx},
		{name: "sh-userns-" + sfx, userns: "pick"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := bootContainer(t, bootOpts{Name: tc.name, Daemon: d, Bus: bus, PrivateUsers: tc.userns})
			hostname, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/hostname", ct.Leader))
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
					out, errOut, _ := ct.run("journalctl", "--no-pager", "-n", "60")
					t.Logf("journal of %s:\n%s%s", tc.name, out, errOut)
				}
			})
			readAcrossHangups(t, pollable(t, master), strings.TrimSpace(string(hostname))+" login:")
			_ = path
		})
	}
}
