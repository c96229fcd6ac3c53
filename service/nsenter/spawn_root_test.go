package nsenter

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// watchReaps makes afterReap report on a channel for the test's duration.
func watchReaps(t *testing.T) <-chan int {
	ch := make(chan int, 16)
	children.Lock()
	old := afterReap
	afterReap = func(pid int) { ch <- pid }
	children.Unlock()
	t.Cleanup(func() {
		children.Lock()
		afterReap = old
		children.Unlock()
	})
	return ch
}

// openFDs counts our open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// insideScript prints, inside the container, who and where the program is,
// its namespaces, what its descriptors lead to and the tree's marker file.
const insideScript = `id; hostname; pwd; echo "env:$HOME $USER $LOGNAME $SHELL $TERM $PATH"
set -- $(cat /proc/$$/stat); echo "self:$1 session:$6 tty:$7"
for n in user mnt pid uts ipc net cgroup; do echo "ns:$(readlink /proc/$$/ns/$n)"; done
ls -l /proc/$$/fd/ | sed -n "s/.* \([0-9]*\) -> /fd:\1 /p"
cat /marker
grep ^0:: /proc/$$/cgroup
echo ttyflags:$(sed -n 's/^flags:[[:space:]]*//p' /proc/$$/fdinfo/0)
cat /proc/$$/uid_map`

func TestStartShellBusybox(t *testing.T) {
	needRoot(t)
	for _, c := range []struct {
		name   string
		userns bool
		uidMap string
	}{
		{"host-userns", false, "0 0 4294967295"},
		{"userns", true, "0 100000 65536"},
	} {
		t.Run(c.name, func(t *testing.T) {
			reaps := watchReaps(t)
			root := busyboxTree(t)
			if err := os.WriteFile(root+"/marker", []byte("marker of "+c.name+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			b := startBox(t, root, "box-"+c.name, c.userns)
			before := openFDs(t)
			master, peer := openPTY(t)
			err := StartShell(b.leader, 0, Shell{
				User: "alice",
				Path: "/bin/sh",
				Args: []string{"sh", "-c", insideScript},
				Env:  []string{"TERM=xterm", "EXTRA=1"},
				TTY:  peer,
			})
			peer.Close()
			if err != nil {
				t.Fatal(err)
			}
			out := readAll(master)
			master.Close()
			for _, want := range []string{
				"uid=1000(alice) gid=1000(alice) groups=10(wheel),1000(alice)",
				"\nbox-" + c.name + "\r\n",
				"\n/home/alice\r\n",
				"env:/home/alice alice alice /bin/sh xterm " + defaultPath + "\r\n",
				"marker of " + c.name,
				// Born in the leader's cgroup, the root of its cgroup
				// namespace; from the daemon's it would be above it.
				"\n0::/\r\n",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("missing %q in:\n%s", want, out)
				}
			}
			for _, n := range []string{"user", "mnt", "pid", "uts", "ipc", "net", "cgroup"} {
				link, err := os.Readlink("/proc/" + strconv.Itoa(b.leader.PID) + "/ns/" + n)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(out, "ns:"+link+"\r\n") {
					t.Errorf("not in the leader's %s namespace %s:\n%s", n, link, out)
				}
			}
			// None of what the daemon opened for the spawn (namespaces, root
			// directory, cgroup) leaks into the program.
			for _, line := range strings.Split(out, "\r\n") {
				fd, ok := strings.CutPrefix(line, "fd:")
				_, target, _ := strings.Cut(fd, " ")
				if ok && (strings.Contains(target, ":[") && !strings.HasPrefix(target, "pipe:[") || target == "/" || strings.Contains(target, "cgroup")) {
					t.Errorf("program has a descriptor of %q", fd)
				}
			}
			if !strings.Contains(strings.Join(strings.Fields(out), " "), c.uidMap) {
				t.Errorf("uid_map is not %q:\n%s", c.uidMap, out)
			}
			// The program leads a session of its own, with the terminal as
			// its controlling terminal.
			self, session, tty := field(out, "self:"), field(out, "session:"), field(out, "tty:")
			if self == "" || session != self || tty == "0" || tty == "" {
				t.Errorf("program %s: session %s, tty %s; want a session of its own and a terminal:\n%s", self, session, tty, out)
			}
			// The terminal reaches the program in blocking mode, whatever
			// the daemon's copy was: a shell reading a non-blocking terminal
			// fails with EAGAIN.
			if flags, err := strconv.ParseUint(field(out, "ttyflags:"), 8, 32); err != nil || flags&syscall.O_NONBLOCK != 0 {
				t.Errorf("terminal flags %q (%v): want blocking", field(out, "ttyflags:"), err)
			}
			pid := <-reaps
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("program %d still there after reaping: %v", pid, err)
			}
			if after := openFDs(t); after != before {
				t.Errorf("%d descriptors open before, %d once the program is reaped", before, after)
			}
		})
	}
}

// field returns the word after key in out.
func field(out, key string) string {
	for _, w := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(w, key); ok {
			return v
		}
	}
	return ""
}

func TestStartShellDefaults(t *testing.T) {
	needRoot(t)
	reaps := watchReaps(t)
	b := startBox(t, busyboxTree(t), "defaults", true)
	for _, c := range []struct {
		user, want string
	}{
		// Root by default; the shell from passwd; a missing home is /.
		{"", "uid=0(root) gid=0(root) groups=0(root)\r\n/root\r\n/bin/sh\r\n"},
		{"1001", "uid=1001(bob) gid=1001(bob) groups=1001(bob)\r\n/\r\n/bin/sh\r\n"},
	} {
		master, peer := openPTY(t)
		// No path: the user's shell, which reads the commands from the
		// terminal.
		err := StartShell(b.leader, 0, Shell{User: c.user, TTY: peer})
		peer.Close()
		if err != nil {
			t.Fatal(err)
		}
		master.WriteString("id; pwd; echo $0; exit\n")
		out := readAll(master)
		master.Close()
		if !strings.Contains(out, c.want) {
			t.Errorf("user %q: missing %q in:\n%s", c.user, c.want, out)
		}
		<-reaps
	}
	// Users the container's user namespace (0-65535) cannot hold.
	_, peer := openPTY(t)
	defer peer.Close()
	for _, user := range []string{"far", "fargroup"} {
		if err := StartShell(b.leader, 0, Shell{User: user, TTY: peer}); !errors.Is(err, ErrNoSuchUser) {
			t.Errorf("user %s: %v, want ErrNoSuchUser", user, err)
		}
	}
}

func TestStartShellRefused(t *testing.T) {
	needRoot(t)
	b := startBox(t, busyboxTree(t), "refused", false)
	_, peer := openPTY(t)
	defer peer.Close()
	before := openFDs(t)
	for _, c := range []struct {
		sh   Shell
		want error
	}{
		{Shell{User: "mallory", TTY: peer}, ErrNoSuchUser},
		{Shell{User: "4242", TTY: peer}, ErrNoSuchUser},
		{Shell{Path: "/bin/zsh", TTY: peer}, ErrNoProgram},
		// A directory and a file nobody may execute are no programs.
		{Shell{Path: "/etc", TTY: peer}, ErrNoProgram},
		{Shell{Path: "/etc/passwd", TTY: peer}, ErrNoProgram},
		{Shell{Path: "bin/sh", TTY: peer}, ErrInvalid},
		{Shell{Env: []string{"X"}, TTY: peer}, ErrInvalid},
		{Shell{}, ErrInvalid},
	} {
		if err := StartShell(b.leader, 0, c.sh); !errors.Is(err, c.want) {
			t.Errorf("StartShell(%+v): %v, want %v", c.sh, err, c.want)
		}
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open before, %d after refusals", before, after)
	}
}

// A leader that is gone is not entered: its PID may name another process.
func TestStartShellLeaderGone(t *testing.T) {
	needRoot(t)
	b := startBox(t, busyboxTree(t), "gone", false)
	if err := b.leader.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-b.leader.Exited()
	<-b.exited // unshare reaped the leader, then exited
	_, peer := openPTY(t)
	defer peer.Close()
	if err := StartShell(b.leader, 0, Shell{TTY: peer}); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("StartShell into a reaped leader: %v, want ESRCH", err)
	}
}

func TestStartLoginBusybox(t *testing.T) {
	needRoot(t)
	for _, userns := range []bool{false, true} {
		reaps := watchReaps(t)
		b := startBox(t, busyboxTree(t), "loginbox", userns)
		master, peer := openPTY(t)
		err := StartLogin(b.leader, 0, peer)
		peer.Close()
		if err != nil {
			t.Fatal(err)
		}
		// Read up to the prompt, then hang up: login goes with the terminal.
		var out []byte
		buf := make([]byte, 256)
		for !strings.Contains(string(out), "login: ") {
			n, err := master.Read(buf)
			if err != nil {
				t.Fatalf("userns %v: %v after %q", userns, err, out)
			}
			out = append(out, buf[:n]...)
		}
		if !strings.Contains(string(out), "loginbox login: ") {
			t.Errorf("userns %v: prompt %q, want the container's host name", userns, out)
		}
		master.Close()
		<-reaps
	}
}

func TestStartLoginMissing(t *testing.T) {
	needRoot(t)
	root := busyboxTree(t)
	b := startBox(t, root, "nologin", false)
	os.Remove(root + "/bin/busybox")
	_, peer := openPTY(t)
	defer peer.Close()
	if err := StartLogin(b.leader, 0, peer); !errors.Is(err, ErrNoProgram) {
		t.Errorf("StartLogin without a login program: %v, want ErrNoProgram", err)
	}
	if err := StartLogin(b.leader, 0, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("StartLogin without a terminal: %v, want ErrInvalid", err)
	}
}

// heldOf reports whether the daemon still holds nsenter's descriptors for the
// program pid.
func heldOf(t *testing.T, pid int) bool {
	t.Helper()
	children.Lock()
	defer children.Unlock()
	c, ok := children.m[pid]
	if !ok {
		t.Fatalf("program %d is not recorded", pid)
	}
	return !c.held.closed()
}

// onlyChild returns the one program recorded.
func onlyChild(t *testing.T) int {
	t.Helper()
	children.Lock()
	defer children.Unlock()
	if len(children.m) != 1 {
		t.Fatalf("%d programs recorded, want 1", len(children.m))
	}
	for pid := range children.m {
		return pid
	}
	return 0
}

// A live program costs the daemon no descriptor once it runs: the next spawn
// releases what nsenter needed.
func TestStartShellReleasesDescriptors(t *testing.T) {
	needRoot(t)
	reaps := watchReaps(t)
	b := startBox(t, busyboxTree(t), "release", true)
	before := openFDs(t)
	first, peer := openPTY(t)
	err := StartShell(b.leader, 0, Shell{Path: "/bin/sh", Args: []string{"sh", "-c", "echo running; read line"}, TTY: peer})
	peer.Close()
	if err != nil {
		t.Fatal(err)
	}
	pid := onlyChild(t)
	readUntilText(t, first, "running")
	if !heldOf(t, pid) {
		t.Fatalf("descriptors released before any other spawn")
	}
	second, peer := openPTY(t)
	err = StartShell(b.leader, 0, Shell{Path: "/bin/sh", Args: []string{"sh", "-c", "true"}, TTY: peer})
	peer.Close()
	if err != nil {
		t.Fatal(err)
	}
	if heldOf(t, pid) {
		t.Errorf("descriptors of the running program %d still held after the next spawn", pid)
	}
	readAll(second)
	second.Close()
	<-reaps
	first.WriteString("\n")
	readAll(first)
	first.Close()
	if got := <-reaps; got != pid {
		t.Errorf("reaped %d, want %d", got, pid)
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open before, %d after both programs", before, after)
	}
}

// readUntilText reads from master up to and including want.
func readUntilText(t *testing.T, master *os.File, want string) {
	t.Helper()
	var out []byte
	buf := make([]byte, 256)
	for !strings.Contains(string(out), want) {
		n, err := master.Read(buf)
		if err != nil {
			t.Fatalf("%v before %q, after %q", err, want, out)
		}
		out = append(out, buf[:n]...)
	}
}
