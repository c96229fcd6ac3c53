// Package machine is the io.systemd.Machine and io.systemd.service front end of
// the machine socket, and of our own io.github.machinedgo.MachineEvents (the
// event stream, events.go): it decodes each call strictly, asks the service
// core, and encodes the answer, with one table from core errors to Varlink
// errors (errors.go). It mirrors upstream's machine-varlink.c; the business
// rules are the core's.
//
// It imports the transport (varlink) and the core (service). It must not
// import another front end (userdb, dbusshim), godbus or a back end;
// TestFrontEndImports enforces that.
package machine
