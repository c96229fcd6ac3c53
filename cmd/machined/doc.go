// Command machined is a drop-in replacement for systemd-machined. It only wires
// things together: flags, logging, the core (service), the unit backend, the
// Varlink front ends and, when a bus is reachable, the D-Bus side. No business
// rules live here.
package main
