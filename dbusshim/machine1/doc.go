// Package machine1 serves org.freedesktop.machine1, the D-Bus API of
// systemd-machined, for the clients that speak only D-Bus: machinectl and
// systemd-nspawn of systemd ≤ 258, nss-mymachines, libvirt.
//
// It is a shim over service.Manager, mirroring the Varlink front end: it
// converts arguments, maps object paths to machine names, answers
// Properties, Introspectable and LogControl1, forwards the core's events as
// MachineNew/MachineRemoved signals, and translates core errors with the one
// table in errors.go. Business rules, authorization included, stay in the
// core: the shim only builds a service.Caller from the bus's credentials of
// the sender.
//
// Objects: /org/freedesktop/machine1 (Manager), one
// /org/freedesktop/machine1/machine/<bus_label_escape(name)> per machine
// (.host included), /org/freedesktop/machine1/machine/self (the caller's
// machine), one /org/freedesktop/machine1/image/<bus_label_escape(name)> per
// image (image.go; looked up in the core's pool for each call),
// /org/freedesktop/LogControl1. Long calls (copies, image clones, removals and
// pool cleaning) end when their sender leaves the bus (departures.go).
//
// The shim dispatches every call itself (Server.ServeCall, the connection's
// busconn.CallHandler), so no object is ever exported or unexported while
// calls arrive, unknown objects get upstream's UnknownObject, and replies are
// encoded once by busconn. The connection must come from busconn.Dial, which
// also keeps the fd arrays that crash godbus v5.2.4 away from it; AcceptFDs is
// the fd policy to give it.
//
// This package must not import the varlink or userdb front ends; cmd/machined
// wires it to the bus and to the core.
package machine1
