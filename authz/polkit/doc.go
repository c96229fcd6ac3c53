// Package polkit implements the core's service.Authorizer with polkit's
// org.freedesktop.PolicyKit1.Authority.CheckAuthorization on the system bus.
//
// It is a bus client, not part of the D-Bus front end: the core asks it, for
// both transports, whenever an unprivileged caller wants something the core's
// own rules (root and the machine's owner pass) do not grant. D-Bus callers
// are identified to polkit by their bus name (subject "system-bus-name"),
// Varlink callers by PID and start time ("unix-process"). Interactive
// authentication is offered only when the caller allowed it.
//
// cmd/machined installs it only when polkitd is on the bus (owned or
// activatable) at start; without it the core's rules alone apply.
//
// This package may import godbus, service and service/proc; it imports no
// front end (varlink/, userdb/, dbusshim/machine1).
package polkit
