// Package quicksys makes the system calls of the registration hot path that
// never wait (state files on the tmpfs /run, small files under /proc, pidfds
// and fd duplication) as raw system calls, and the write of a log line that
// must not wait (pwritev2 with RWF_NOWAIT).
//
// A plain syscall tells the Go scheduler it may block: on an idle daemon that
// wakes sysmon with a futex, and a registration makes a dozen of them. These
// calls never wait on a disk or a peer, so the handoff buys nothing; on a file
// system where one does stall, it holds its P for that long and no more.
// Sockets are internal/sockio's; anything that can really block (netlink, bus
// calls, namespace entry) keeps the ordinary wrappers.
//
// It must import nothing of this module.
package quicksys
