// Package containerbus implements service.ContainerBus: it asks the service
// manager of a machine to start the getty of a login and the transient unit of
// a shell, over the machine's system bus, as upstream machined does.
//
// The core connects the socket (as the container's root, see
// proc.DialInRoot) and hands it over; this package speaks D-Bus on it through
// a guarded busconn connection, since whatever listens inside a container is
// the container's and may send anything. The host's own bus (.host) is dialled
// here, at the address given to New. Every call is bounded by a timeout.
//
// This package may import godbus, service and dbusshim/busconn; it imports no
// front end (varlink/, userdb/, dbusshim/machine1).
package containerbus
