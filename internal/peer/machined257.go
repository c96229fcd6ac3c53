package peer

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// DefaultRoot is where `make deps` puts the Debian 13 tree.
const DefaultRoot = "/var/tmp/trixie-root"

// Machined257 is upstream machined's path inside the tree.
const Machined257 = "/usr/lib/systemd/systemd-machined"

// Installed257 says why machined 257 cannot run from root, or nil.
func Installed257(root string) error {
	if _, err := os.Stat(filepath.Join(root, Machined257)); err != nil {
		return fmt.Errorf("machined 257 not installed in %s (run make deps): %w", root, err)
	}
	return nil
}

// Run257 is where machined 257 serves, below the host directory run that is its
// /run.
type Run257 string

// MachineSocket is its io.systemd.Machine socket.
func (r Run257) MachineSocket() string {
	return filepath.Join(string(r), "systemd", "machine", "io.systemd.Machine")
}

// UserdbSocket is its io.systemd.UserDatabase socket.
func (r Run257) UserdbSocket() string {
	return filepath.Join(string(r), "systemd", "userdb", "io.systemd.Machine")
}

// BusSocket is where it expects its system bus; the caller runs a dbus-daemon
// listening there before starting it.
func (r Run257) BusSocket() string {
	return filepath.Join(string(r), "dbus", "system_bus_socket")
}

// Prepare makes the directories machined 257 expects below its /run.
func (r Run257) Prepare() error {
	for _, s := range []string{"dbus", "systemd", "lock", "log"} {
		if err := os.MkdirAll(filepath.Join(string(r), s), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// Command257 is machined 257 chrooted into root, in a mount namespace of its own
// where /proc, /sys, /dev and run (as /run) are mounted. Nothing is mounted in
// the caller's namespace, so nothing leaks into the shared tree, and the
// sockets under run stay reachable from the host. It dies with the caller.
// env is its whole environment besides PATH.
func Command257(root string, run Run257, env ...string) *exec.Cmd {
	return Command257With(root, run, nil, env...)
}

// Bind is a host directory mounted on a directory of the tree (Tree, absolute
// inside it) in machined 257's mount namespace only.
type Bind struct{ Host, Tree string }

// Command257With is Command257 with binds mounted after /run, in order (a bind
// below /run lands in run).
func Command257With(root string, run Run257, binds []Bind, env ...string) *exec.Cmd {
	script := `set -e
R="$1"; RUN="$2"
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount --rbind /dev "$R/dev"
mount --bind "$RUN" "$R/run"
`
	args := []string{"-c", "", "sh", root, string(run)}
	for i, b := range binds {
		script += fmt.Sprintf("mount --bind \"${%d}\" \"$R${%d}\"\n", 3+2*i, 4+2*i)
		args = append(args, b.Host, b.Tree)
	}
	args[1] = script + "exec chroot \"$R\" " + Machined257
	cmd := exec.Command("/bin/sh", args...)
	// Go makes / rprivate in the new namespace before the script runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Setsid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	return cmd
}
