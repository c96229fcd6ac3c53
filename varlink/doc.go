// Package varlink is machined's Varlink side: the io.systemd.Machine and
// io.systemd.service front end (frontend.go, machine.go, svc.go, with strict
// parameter decoding in params.go and the one error table in errors.go), and the
// capped transport every machined socket uses (server.go, workers.go, conn.go,
// peer.go, activation.go, notify.go).
//
// varlink/go dispatches and encodes; we own the accept loop and framing, because
// the library's reader has no size, fd or connection limits and the sockets are
// world-writable. The front end holds no business rules: it decodes, calls the
// service package, encodes. It must not import godbus, dbusshim or userdb; the
// transport files must not import the service package.
package varlink
