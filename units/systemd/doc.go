// Package systemd is the unit backend that asks the service manager itself:
// it implements service.Units with calls to org.freedesktop.systemd1 over D-Bus,
// the way upstream machined does (StartTransientUnit for a machine's scope,
// StopUnit, KillUnit, UnrefUnit, JobRemoved to learn when a start job ended).
//
// The caller owns the bus connection; Client only adds a match rule for
// JobRemoved and a signal channel per pending start. Every call carries a
// timeout, so a manager that never answers fails one operation, not the daemon.
//
// cmd/machined picks this backend when systemd runs on the host, on a system
// bus connection of its own, and units/cgroup otherwise. This package may import
// godbus, service and service/proc; it imports no front end (varlink/, userdb/,
// dbusshim/machine1).
package systemd
