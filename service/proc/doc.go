// Package proc is machined's window onto other processes: it pins them with
// pidfds (PidRef), watches them exit on the Go netpoller, derives their systemd
// unit from /proc/PID/cgroup, reads their user-namespace id maps, reads
// os-release inside their root directory and lists the IP addresses of their
// network namespace.
//
// Everything read through /proc/PID is re-checked against the pidfd afterwards,
// so a recycled PID can never make a stranger's data look like a machine's.
// Container files are opened with openat2(RESOLVE_IN_ROOT) below the leader's
// root; network and mount namespaces (the latter only for move_mount, which
// must run inside the target namespace) are entered on a throw-away locked OS
// thread, so no operation here forks or joins a user namespace, and no
// goroutine is ever left in a container's namespace. Work done as a machine's
// owner runs on threads that gave up the daemon's file system privileges
// (AsOwner, OwnerThread).
//
// The package is called by the service core (registration, lookup by PID, exit
// tracking, metadata queries) and by cmd/machined (cgroup root discovery). It
// must not import the Varlink or D-Bus libraries or any other package of this
// project but internal/quicksys (the raw file system calls of the registration
// hot path), internal/bufpool and service/envfile (the env-file reader it
// shares with the state files): its other dependencies are the standard library
// and golang.org/x/sys/unix.
package proc
