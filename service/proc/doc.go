// Package proc provides the low-level process inspection helpers used by the
// machine registry: pidfd-based process references (PidRef), cgroup path and
// unit resolution, user-namespace ID maps, os-release reading inside a
// process' root directory, and network address enumeration inside a process'
// network namespace.
//
// The package depends only on the standard library and golang.org/x/sys; it
// knows nothing about the D-Bus or Varlink front ends.
package proc
