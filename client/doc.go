// Package client is a Go client of the io.systemd.Machine Varlink interface, for
// programs that register their containers and virtual machines with machined (or
// with upstream systemd-machined) and for tools that list, stop or inspect them.
//
// It speaks only Varlink on the machine socket (DefaultPath). A leader can be
// given as a pidfd, which pins it against PID reuse; replies that carry file
// descriptors (Open, OpenRootDirectory) hand them back as *os.File. Errors of the
// daemon are *Error values that match the package's sentinels with errors.Is,
// and io.systemd.System errors also match their syscall.Errno.
//
// A Client is safe for concurrent use. Each call takes a connection of its own
// for as long as it runs: sequential calls reuse one connection, calls made at
// the same time dial extra ones, and one idle connection is kept. A call whose
// context ends before its reply has been read closes its connection, because the
// reply may still arrive on it; the next call dials afresh.
//
// This package is a client: it imports only github.com/varlink/go,
// golang.org/x/sys and the standard library, never the daemon's packages, so that
// other projects can use it without pulling the daemon in.
package client
