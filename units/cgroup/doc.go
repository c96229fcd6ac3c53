// Package cgroup is the built-in unit backend for hosts where PID 1 is not systemd:
// it implements service.Units directly on a cgroup v2 hierarchy.
//
// A scope unit is a directory <root>/<slice path>/<unit>; the machine's leader is
// moved into it by writing its PID to cgroup.procs. Slices expand like systemd's
// ("a-b.slice" lives in "a.slice/a-b.slice"), so sd-login and every other reader
// that derives the unit from /proc/PID/cgroup sees the same layout it would under
// systemd. Stopping, killing and activity checks work on the directory tree.
//
// Only the scope's placement is modelled: Description and the caller's extra scope
// properties are ignored (except Slice, which picks the parent slice), and no
// controller settings such as TasksMax are applied, because on hybrid hosts the
// cgroup2 hierarchy usually has no controllers enabled at all.
//
// Backend keeps the units it created in memory; units it did not create (adopted
// after a restart, or registered without allocateUnit) are found by a bounded walk
// of the slice tree and are never removed.
//
// It may import service (the interface it implements) and service/proc, nothing
// else of this module: no front end (varlink/, userdb/, dbusshim/), and no D-Bus or
// Varlink library. cmd/machined chooses it when systemd is not running on the host.
package cgroup
