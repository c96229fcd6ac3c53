package tests

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service/nsenter"
	"github.com/machined-go/machined/service/proc"
)

// The shell and login of service/nsenter in an unbooted Debian 12 tree, driven
// directly: what runs there must be the tree's own bash, id, tty and login,
// with its accounts and its PAM.

// debianTree is the cached Debian 12 tree of tests/setup/debian-tree.sh, which
// tests never write into; a test without it is skipped.
// unbootedTree is the cached Debian tree (boot_harness_test.go's), built if
// missing; a tree that cannot be had fails the test with the script's error.
func unbootedTree(t *testing.T) string {
	t.Helper()
	tree, err := debianTree()
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// startUnbooted starts a container on tree that runs no init: a sleep as PID 1,
// chrooted into the tree, in mount, UTS, IPC, network, PID and cgroup
// namespaces of its own, with its own /proc and devpts instance mounted in its
// private mount namespace (the tree itself is not written). It returns the
// leader, pinned.
func startUnbooted(t *testing.T, tree, hostname string) *proc.PidRef {
	t.Helper()
	script := `mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$2/dev/pts" && hostname "$1" && exec chroot "$2" /bin/sleep infinity`
	cmd := exec.Command("unshare", "--kill-child", "-m", "-u", "-i", "-n", "-p", "-C", "-f",
		"--propagation", "private", "--mount-proc="+filepath.Join(tree, "proc"), "sh", "-c", script, "sh", hostname, tree)
	stderr, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	for {
		if pid := firstChild(cmd.Process.Pid); pid > 0 {
			if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); string(comm) == "sleep\n" {
				ref, err := proc.Open(pid)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ref.Signal(syscall.SIGKILL); ref.Close() })
				return ref
			}
		}
		select {
		case <-exited:
			msg, _ := os.ReadFile(stderr.Name())
			t.Fatalf("container did not start: %s", msg)
		default:
		}
		unix.Nanosleep(&unix.Timespec{Nsec: 10e6}, nil)
	}
}

// firstChild returns pid's first child, 0 when it has none.
func firstChild(pid int) int {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// containerPTY opens a terminal of the container's own devpts instance, as the
// core does for OpenShell: the master and its peer.
func containerPTY(t *testing.T, leader *proc.PidRef) (master, peer *os.File) {
	t.Helper()
	m, err := os.OpenFile("/proc/"+strconv.Itoa(leader.PID)+"/root/dev/pts/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	fd, _, errno := unix.Syscall(unix.SYS_IOCTL, m.Fd(), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		t.Fatal(errno)
	}
	return m, os.NewFile(fd, "pty-peer")
}

// readTerminal reads what comes out of master until nobody holds the peer any
// more (EIO).
func readTerminal(master *os.File) string {
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := master.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			return out.String()
		}
	}
}

func TestNsenterShellDebian(t *testing.T) {
	needRoot(t)
	tree := unbootedTree(t)
	leader := startUnbooted(t, tree, "unbooted")
	script := `readlink /proc/$$/exe; id; hostname; tty; pwd; echo "$HOME $USER $SHELL $TERM"`
	for _, c := range []struct {
		user string
		want []string
	}{
		{"", []string{"uid=0(root) gid=0(root) groups=0(root)\r\n", "\r\n/root\r\n", "/root root /bin/bash xterm-256color\r\n"}},
		{"tester", []string{"uid=1000(tester) gid=1000(tester) groups=1000(tester)\r\n", "\r\n/home/tester\r\n", "/home/tester tester /bin/bash xterm-256color\r\n"}},
		{"1000", []string{"uid=1000(tester) gid=1000(tester) groups=1000(tester)\r\n"}},
	} {
		master, peer := containerPTY(t, leader)
		ptsNumber, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
		if err != nil {
			t.Fatal(err)
		}
		err = nsenter.StartShell(leader, 0, nsenter.Shell{
			User: c.user,
			Args: []string{"bash", "-c", script},
			Env:  []string{"TERM=xterm-256color"},
			TTY:  peer,
		})
		peer.Close()
		if err != nil {
			t.Fatalf("user %q: %v", c.user, err)
		}
		out := readTerminal(master)
		// The tree's bash on the container's own terminal, in its UTS
		// namespace.
		for _, want := range append(c.want, "\r\nunbooted\r\n", "\r\n/dev/pts/"+strconv.Itoa(int(ptsNumber))+"\r\n", "/usr/bin/bash\r\n") {
			if !strings.Contains(out, want) {
				t.Errorf("user %q: missing %q in:\n%s", c.user, want, out)
			}
		}
	}
}

func TestNsenterShellDebianUnknownUser(t *testing.T) {
	needRoot(t)
	leader := startUnbooted(t, unbootedTree(t), "unknown")
	_, peer := containerPTY(t, leader)
	defer peer.Close()
	// nobody@host: a user of the host, not of the tree, is unknown there.
	if err := nsenter.StartShell(leader, 0, nsenter.Shell{User: "mallory", TTY: peer}); !errors.Is(err, nsenter.ErrNoSuchUser) {
		t.Errorf("unknown user: %v, want ErrNoSuchUser", err)
	}
}

func TestNsenterLoginDebian(t *testing.T) {
	needRoot(t)
	leader := startUnbooted(t, unbootedTree(t), "unbooted-login")
	master, peer := containerPTY(t, leader)
	err := nsenter.StartLogin(leader, 0, peer)
	peer.Close()
	if err != nil {
		t.Fatal(err)
	}
	out := readTerminalUntil(t, master, "login: ")
	if !strings.Contains(out, "unbooted-login login: ") {
		t.Errorf("prompt %q, want the container's host name", out)
	}
	// Root logs in without a password (the tree's passwd -d): the tree's
	// login hands its terminal to root's shell. Each line goes once the
	// program waits for it: login flushes what was typed ahead.
	master.WriteString("root\n")
	out += readTerminalUntil(t, master, "root@unbooted-login:~# ")
	master.WriteString("echo logged-in-as-$(id -un) on $(tty); exit\n")
	out += readTerminal(master)
	if !strings.Contains(out, "logged-in-as-root on /dev/pts/") {
		t.Errorf("after login:\n%s", out)
	}
}

// readTerminalUntil reads from master up to and including want.
func readTerminalUntil(t *testing.T, master *os.File, want string) string {
	t.Helper()
	var out []byte
	buf := make([]byte, 256)
	for !bytes.Contains(out, []byte(want)) {
		n, err := master.Read(buf)
		if err != nil {
			t.Fatalf("%v before %q, after %q", err, want, out)
		}
		out = append(out, buf[:n]...)
	}
	return string(out)
}
