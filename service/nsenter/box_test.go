package nsenter

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

	"github.com/machined-go/machined/service/proc"
)

// needRoot skips tests that start containers: creating namespaces, joining
// them and switching users needs root (CI runs as root).
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: starts containers in namespaces of their own and enters them")
	}
}

// busyboxTree builds a minimal tree: static busybox, an account file with root
// and a user with a supplementary group, and the user's home.
func busyboxTree(t *testing.T) string {
	t.Helper()
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox not installed: run `make deps` (busybox-static)")
	}
	root := t.TempDir()
	// A container in a user namespace must reach its tree: t.TempDir's
	// directories are root's alone.
	os.Chmod(filepath.Dir(root), 0o755)
	os.Chmod(root, 0o755)
	for _, d := range []string{"bin", "etc", "proc", "dev", "tmp", "root", "home/alice"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "sleep", "cat", "ls", "id", "hostname", "tty", "pwd", "echo", "readlink", "grep", "sed"} {
		os.Symlink("busybox", filepath.Join(root, "bin", a))
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\nbob:x:1001:1001::/nonexistent:/bin/sh\nfar:x:70000:100::/:/bin/sh\nfargroup:x:1002:70000::/:/bin/sh\n",
		"etc/group":  "root:x:0:\nalice:x:1000:\nwheel:x:10:alice\nbob:x:1001:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// box is a container: a leader that sleeps in namespaces of its own (all seven
// with userns, else all but the user namespace), chrooted into a tree.
type box struct {
	leader *proc.PidRef
	exited <-chan struct{} // closed once unshare, the leader's parent, has been reaped
}

// startBox starts a container on root named hostname. With userns, its user
// namespace maps 0-65535 to 100000-165535 on the host.
func startBox(t *testing.T, root, hostname string, userns bool) *box {
	t.Helper()
	args := []string{"--kill-child", "-m", "-u", "-i", "-n", "-p", "-C", "-f", "--propagation", "private", "--mount-proc=" + filepath.Join(root, "proc")}
	args = append(args, "sh", "-c", `hostname "$1" && exec chroot "$2" /bin/sleep 100000`, "sh", hostname, root)
	cmd := exec.Command("unshare", args...)
	stderr, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if fd := boxCgroup(t); fd >= 0 {
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
	}
	if userns {
		// unshare's --map-users needs newuidmap; Go writes the maps itself.
		// The switch to uid 0 inside makes the process the namespace's root
		// (host uid 100000), which keeps its capabilities across the exec.
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWUSER
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	// The leader is unshare's child, once it is sleeping in the tree.
	for {
		pid := childOf(cmd.Process.Pid)
		if pid > 0 {
			if exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); strings.HasSuffix(exe, "/bin/busybox") {
				ref, err := proc.Open(pid)
				if err != nil {
					t.Fatal(err)
				}
				exited := ref.Exited()
				t.Cleanup(func() {
					ref.Signal(syscall.SIGKILL)
					<-exited // out of its cgroup, which can then go
					ref.Close()
				})
				return &box{leader: ref, exited: exited}
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

// childOf returns the first child of pid, 0 when it has none.
func childOf(pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// boxCgroup makes a cgroup v2 group of the container's own, removed at
// cleanup, and returns a descriptor of it; -1 without a cgroup v2 hierarchy.
func boxCgroup(t *testing.T) int {
	t.Helper()
	mount, err := proc.Cgroup2Root()
	if err != nil {
		return -1
	}
	dir, err := os.MkdirTemp(mount, "nsenter-test-")
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: this one after the container's.
	t.Cleanup(func() {
		unix.Close(fd)
		os.Remove(dir)
	})
	return fd
}

// openPTY opens a terminal on the host: its master and its peer.
func openPTY(t *testing.T) (master, peer *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
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

// readAll reads what the program writes on the terminal until every holder of
// its peer has closed it (the master then reads EIO).
func readAll(master *os.File) string {
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := master.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			if errors.Is(err, syscall.EIO) || n == 0 {
				return out.String()
			}
			return out.String() + "\nread error: " + err.Error()
		}
	}
}
