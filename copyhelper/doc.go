// Package copyhelper runs the tree copies of CopyFrom and CopyTo in a process
// of their own, as upstream machined does in a forked child: the daemon's own
// binary started again with Arg, handed the two directory fds and the request.
//
// A copy is a long run of file system calls, each of which in the daemon goes
// through the Go scheduler that also serves every client: whenever one
// outlasts the runtime's monitor tick, the daemon's only scheduler slot is
// handed to another thread and back. In a process that runs nothing else the
// content can move with raw system calls (containerfs.CopyAlone), and a copy
// stuck in a file system the container controls holds up a process the daemon
// can kill, not one of its own threads.
//
// The helper does exactly what containerfs does in the daemon, with the same
// identities (proc.OwnerThread per side): it is not a privilege boundary but a
// scheduling and failure boundary.
//
// Runner implements service.TreeCopier; Main is the helper's side. The package
// imports service/containerfs, service/proc, internal/copystreams and the
// standard library; no front end, no bus.
package copyhelper
