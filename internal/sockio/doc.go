// Package sockio does the socket I/O of the daemon's busiest connections (the
// D-Bus relay and Varlink connections) with raw system calls inside
// syscall.RawConn callbacks: the netpoller still parks a goroutine on a socket
// that is not ready, but a call on a ready socket does not tell the scheduler
// it may block, which on an idle daemon wakes sysmon with a futex on every
// message. Non-blocking sockets never wait in the kernel, so nothing is lost.
//
// It must import nothing of this module.
package sockio
