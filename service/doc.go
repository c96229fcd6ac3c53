// Package service is the transport-free core of machined: the machine registry,
// its lifecycle (register, terminate, kill, unregister, leader exit), persistence,
// authorization and the user-namespace id mapping that userdb synthesis reads,
// and the rules of the image methods over the images package's pool (images.go).
//
// Front ends (varlink, userdb, dbusshim) call the Manager's value-returning methods
// and translate the closed set of errors in errors.go, each with one table.
//
// This package must not import github.com/varlink/go, github.com/godbus/dbus or any
// front-end package; TestNoTransportImports enforces that. OS plumbing lives in
// the sub-packages proc (processes, pidfds, /proc), persist (state files) and cgroup
// (the built-in cgroup v2 unit backend).
package service
