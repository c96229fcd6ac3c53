// Package nsenter starts programs inside a container without the container's
// help: a shell as any of its users, or its own login on a terminal, for
// containers that run no service manager with a bus to ask (upstream can only
// ask the container's systemd to start a unit).
//
// The program runs in all of the leader's namespaces (user, mount, PID, UTS,
// IPC, network, cgroup), in its root directory and its cgroup, as a user of the
// container's own account files, on a terminal of its own as the leader of a
// new session. The account files are read below the leader's root with
// openat2(RESOLVE_IN_ROOT) as the machine's owner (proc.AsOwner), never by
// joining a namespace.
//
// Joining a user namespace needs a single-threaded process, which a Go
// program never is. The daemon therefore enters the namespaces that act on
// children (PID, UTS, IPC, network, cgroup) on a disposable thread, forks from
// it util-linux nsenter(1) directly into the leader's cgroup, and leaves to
// nsenter what needs one thread: the mount and user namespaces and the root
// directory, given as descriptors the daemon opened and checked against the
// leader's pidfd. nsenter then execs the program in place: the process the
// daemon started is the program, and the daemon reaps it when it exits.
//
// The package is called by the service core. It may import service/proc and
// internal/…, never the core (service), a transport or a back end.
package nsenter
