// Package machineimage is the io.systemd.MachineImage front end of the machine
// socket: it decodes each call strictly, asks the service core, and encodes the
// answer, with one table from core errors to Varlink errors (errors.go). The
// rules (names, authorization, operations) are the core's.
//
// It imports the transport (varlink) and the core (service). It must not import
// another front end, godbus or a back end;
// TestFrontEndImports enforces that.
package machineimage
