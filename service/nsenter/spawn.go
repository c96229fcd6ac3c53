package nsenter

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service/proc"
)

// Shell is what StartShell runs.
type Shell struct {
	User string   // name or numeric uid inside the container; "" = root
	Path string   // absolute; "" = the user's shell from the container's passwd (fallback /bin/sh)
	Args []string // nil = [Path]
	Env  []string // KEY=VALUE, on top of TERM, HOME, USER, LOGNAME, SHELL, PATH
	TTY  *os.File // the PTY peer (opened inside the container); stdio and controlling terminal
}

// Bounds of a request's program and arguments.
const (
	maxPath     = 4096 // PATH_MAX
	maxArgs     = 4096
	maxArgBytes = 128 << 10
)

// loginPrograms are where a container's login program may be, in order; a
// busybox tree without a login link still has the applet.
var loginPrograms = [][]string{{"/bin/login"}, {"/usr/bin/login"}, {"/bin/busybox", "login"}}

// nogroup is the overflow gid, which owns nothing on a sane system: reads as a
// machine's owner are done with it, as the owner's own gid is not recorded.
const nogroup = 65534

// StartShell starts sh inside the leader's container (see the package
// comment) and returns once util-linux nsenter runs, which then enters the
// mount and user namespaces and the root directory and execs the program: a
// failure at that point (a program that does not run) is reported by nsenter
// on the terminal, where the session then ends. owner is the machine's owner,
// whose privileges the container's files are read with.
//
// For a container in the host's user namespace the program's privileges are
// those of the user it runs as on the host (root's for root, with the
// daemon's capability bounding set, not the container's): only root may ask
// for that (the core's authorization). For a container in a user namespace of
// its own, it runs as a user of that namespace and cannot exceed what the
// namespace's root may do.
func StartShell(leader *proc.PidRef, owner uint32, sh Shell) error {
	if err := checkShell(sh); err != nil {
		return err
	}
	var acct Account
	var groups []uint32
	var prog program
	t, err := prepare(leader, owner, func(root int) error {
		passwd, err := readAccountFile(root, "etc/passwd")
		if err != nil {
			return err
		}
		if acct, err = lookupAccount(passwd, sh.User); err != nil {
			return err
		}
		group, err := readAccountFile(root, "etc/group")
		if err != nil {
			return err
		}
		groups = groupsOf(group, acct)
		prog.path = sh.Path
		if prog.path == "" {
			prog.path = acct.Shell
			if !isProgram(root, prog.path) {
				prog.path = "/bin/sh"
			}
		}
		if !isProgram(root, prog.path) {
			return fmt.Errorf("%s: %w", prog.path, ErrNoProgram)
		}
		prog.dir = "/"
		if isDir(root, acct.Home) {
			prog.dir = acct.Home
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer t.close()
	prog.argv = sh.Args
	if prog.argv == nil {
		prog.argv = []string{prog.path}
	}
	prog.env = environment(acct, sh.Env)
	prog.uid = acct.UID
	if prog.gid, prog.groups, err = hostIDs(leader, acct.UID, groups); err != nil {
		return err
	}
	return spawn(t, prog, sh.TTY)
}

// StartLogin starts the container's own login program (/bin/login,
// /usr/bin/login or busybox's) on tty as the container's root, as StartShell
// starts a shell.
func StartLogin(leader *proc.PidRef, owner uint32, tty *os.File) error {
	if tty == nil {
		return fmt.Errorf("no terminal: %w", ErrInvalid)
	}
	var prog program
	t, err := prepare(leader, owner, func(root int) error {
		for _, argv := range loginPrograms {
			if isProgram(root, argv[0]) {
				prog.path, prog.argv = argv[0], argv
				return nil
			}
		}
		return fmt.Errorf("login: %w", ErrNoProgram)
	})
	if err != nil {
		return err
	}
	defer t.close()
	prog.dir = "/"
	prog.env = []string{"TERM=" + defaultTerm, "PATH=" + defaultPath}
	if prog.gid, _, err = hostIDs(leader, 0, []uint32{0}); err != nil {
		return err
	}
	// No supplementary groups: login sets those of whoever logs in.
	return spawn(t, prog, tty)
}

// checkShell checks the request's own fields, before anything is opened.
func checkShell(sh Shell) error {
	if sh.TTY == nil {
		return fmt.Errorf("no terminal: %w", ErrInvalid)
	}
	if sh.Path != "" && (!strings.HasPrefix(sh.Path, "/") || len(sh.Path) > maxPath || strings.ContainsRune(sh.Path, 0)) {
		return fmt.Errorf("path %.64q: not an absolute path of at most %d bytes: %w", sh.Path, maxPath, ErrInvalid)
	}
	if sh.Args != nil && len(sh.Args) == 0 {
		return fmt.Errorf("arguments: empty list, the program's name is missing: %w", ErrInvalid)
	}
	if len(sh.Args) > maxArgs {
		return fmt.Errorf("arguments: %d, at most %d: %w", len(sh.Args), maxArgs, ErrInvalid)
	}
	size := 0
	for _, a := range sh.Args {
		size += len(a) + 1
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("argument %.64q: contains NUL: %w", a, ErrInvalid)
		}
	}
	if size > maxArgBytes {
		return fmt.Errorf("arguments: %d bytes, at most %d: %w", size, maxArgBytes, ErrInvalid)
	}
	return checkEnvironment(sh.Env)
}

// prepare opens the leader's root directory as owner, lets inspect look
// inside it (as owner too), then pins the rest of the target.
func prepare(leader *proc.PidRef, owner uint32, inspect func(root int) error) (*target, error) {
	as := proc.Owner{UID: owner}
	if owner != 0 && owner != uint32(os.Geteuid()) {
		as.GID = nogroup
	}
	root := -1
	err := proc.AsOwner(as, func() error {
		var err error
		if root, err = openRoot(leader); err != nil {
			return err
		}
		return inspect(root)
	})
	if err != nil {
		if root >= 0 {
			unix.Close(root)
		}
		return nil, err
	}
	return pinTarget(leader, root)
}

// openRoot opens the leader's root directory (proc.PidRef.OpenRoot). A leader
// that has exited, zombie or reaped, has no root: syscall.ESRCH, not /proc's
// ENOENT.
func openRoot(leader *proc.PidRef) (int, error) {
	fd, err := leader.OpenRoot()
	if err != nil && !errors.Is(err, syscall.ESRCH) && !leader.Alive() {
		return -1, fmt.Errorf("%v: process exited: %w", err, syscall.ESRCH)
	}
	return fd, err
}

// readAccountFile reads an account file of the container; one that is not
// there reads as empty (root still exists).
func readAccountFile(root int, path string) ([]byte, error) {
	data, err := proc.ReadFileInRoot(root, path, maxAccountFile)
	if errors.Is(err, syscall.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the container's /%s: %w", path, err)
	}
	return data, nil
}

// isProgram reports whether path is, inside the container, a regular file
// someone may execute.
func isProgram(root int, path string) bool {
	st, err := proc.StatInRoot(root, path)
	return err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o111 != 0
}

// isDir reports whether path is, inside the container, a directory.
func isDir(root int, path string) bool {
	st, err := proc.StatInRoot(root, path)
	return err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
}

// hostIDs checks that the container's user namespace maps uid, and translates
// its gids (the primary group first) into our user namespace, where the
// nsenter process takes them before it joins the container's: they keep their
// meaning across the join. An unmapped uid or primary group is a user the
// container cannot have; unmapped supplementary groups are left out.
func hostIDs(leader *proc.PidRef, uid uint32, gids []uint32) (uint32, []uint32, error) {
	umap, gmap, err := proc.ReadIDMaps(leader)
	if err != nil {
		return 0, nil, err
	}
	if _, ok := umap.ToHost(uid); !ok {
		return 0, nil, fmt.Errorf("uid %d is not mapped by the container's user namespace: %w", uid, ErrNoSuchUser)
	}
	primary, ok := gmap.ToHost(gids[0])
	if !ok {
		return 0, nil, fmt.Errorf("gid %d is not mapped by the container's user namespace: %w", gids[0], ErrNoSuchUser)
	}
	out := make([]uint32, 0, len(gids))
	for _, g := range gids {
		if h, ok := gmap.ToHost(g); ok {
			out = append(out, h)
		}
	}
	return primary, out, nil
}

// program is what runs, as the container sees it but for gid and groups,
// which are in our user namespace.
type program struct {
	path   string
	argv   []string
	env    []string
	dir    string // the working directory inside the container
	uid    uint32 // inside the container
	gid    uint32
	groups []uint32
}

// nsenterBinary is util-linux nsenter on the host, found once: its path,
// and its identity, which tells a process still running it from the program
// it has exec'd.
type nsenterBinary struct {
	path string
	st   unix.Stat_t
}

var findNsenter = sync.OnceValues(func() (nsenterBinary, error) {
	path, err := exec.LookPath("nsenter")
	for _, p := range []string{"/usr/bin/nsenter", "/bin/nsenter"} {
		if st, serr := os.Stat(p); serr == nil && st.Mode().IsRegular() {
			path, err = p, nil
			break
		}
	}
	if err != nil {
		return nsenterBinary{}, fmt.Errorf("util-linux nsenter not found: %w", err)
	}
	b := nsenterBinary{path: path}
	if err := unix.Stat(path, &b.st); err != nil {
		return nsenterBinary{}, fmt.Errorf("util-linux nsenter: %w", err)
	}
	return b, nil
})

// spawn starts prog in target t on tty. The descriptors nsenter opens are
// named by /proc/<our pid>/fd/N, so they are never inherited by the program;
// they stay open until nsenter has exec'd the program (releaseRunning) or the
// program is reaped.
func spawn(t *target, prog program, tty *os.File) error {
	nsenter, err := findNsenter()
	if err != nil {
		return err
	}
	releaseRunning(nsenter.st)
	held := t.handOver()
	self := "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/"
	args := []string{"nsenter", "--mount=" + self + strconv.Itoa(held.mnt)}
	if held.user >= 0 {
		args = append(args, "--user="+self+strconv.Itoa(held.user))
	}
	// nsenter execs argv[optind] with the arguments that follow, so the
	// program's argv[0] is its path: a different argv[0] asked for is lost.
	args = append(args,
		"--root="+self+strconv.Itoa(held.root),
		"--wdns="+prog.dir,
		"--preserve-credentials", "--setuid="+strconv.FormatUint(uint64(prog.uid), 10),
		"--no-fork", "--", prog.path)
	args = append(args, prog.argv[1:]...)

	// Fd clears O_NONBLOCK, which the program must not inherit on its
	// terminal: a shell reading it would fail with EAGAIN.
	ttyfd := tty.Fd()
	sys := &syscall.SysProcAttr{
		Setsid:  true,
		Setctty: true,
		Ctty:    0,
		// Root, for nsenter to join the namespaces, but already with the
		// program's groups: they keep their meaning across the join, and
		// nsenter only switches the uid (--preserve-credentials).
		Credential: &syscall.Credential{Uid: 0, Gid: prog.gid, Groups: prog.groups},
	}
	if t.cgroup >= 0 {
		sys.UseCgroupFD, sys.CgroupFD = true, t.cgroup
	}
	attr := &syscall.ProcAttr{
		Dir:   "/",
		Env:   prog.env,
		Files: []uintptr{ttyfd, ttyfd, ttyfd},
		Sys:   sys,
	}
	type started struct {
		pid int
		err error
	}
	res := <-proc.OnDisposableThread(func() started {
		for i, fd := range t.children {
			if err := unix.Setns(fd, childNamespaces[i].flag); err != nil {
				return started{err: fmt.Errorf("join %s namespace: %w", childNamespaces[i].name, err)}
			}
		}
		// The fork happens on this thread, so nsenter is born in the
		// namespaces it joined, in the leader's PID namespace among them.
		pid, err := syscall.ForkExec(nsenter.path, args, attr)
		return started{pid, err}
	})
	runtime.KeepAlive(tty)
	if res.err != nil {
		held.close()
		return fmt.Errorf("start %s in the container: %w", prog.path, res.err)
	}
	adopt(res.pid, held)
	return nil
}
