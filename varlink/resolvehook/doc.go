// Package resolvehook is the io.systemd.Resolve.Hook front end: the socket a
// name resolver (systemd-resolved) asks before it looks a name up elsewhere,
// so that a machine's name resolves to the machine's own addresses. It decodes
// each call strictly, asks the service core which names are machines' and
// what their addresses are, and encodes the answer as DNS records, with one
// table from core errors to Varlink errors (errors.go). The rule of which name
// means what is the core's (service/hostnames.go).
//
// It imports the transport (varlink) and the core (service). It must not
// import another front end (varlink/machine, userdb, dbusshim), godbus or a
// back end; TestFrontEndImports enforces that.
package resolvehook
