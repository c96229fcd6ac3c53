// Package busconn opens D-Bus connections for a daemon built on godbus v5.2.4
// with a guard in front of godbus's reader.
//
// godbus v5.2.4 panics in its reader goroutine when a message carries an array
// of unix fds ("ah", "a{sh}", "a{hs}", also inside a variant) together with
// real fds: the decoder produces UnixFD values where the array it builds holds
// UnixFDIndex, and reflect panics. The panic happens before any handler or
// interceptor runs, so any local bus client could take the daemon down by
// sending such a message. godbus also never closes fds it is handed and nobody
// asked for.
//
// Dial therefore does not give godbus the bus socket. It gives it one end of a
// socketpair and relays between that and the bus, message by message. Messages
// without fds pass unchanged, in batches. A message with fds passes with them
// only when Config.AcceptFDs allows its kind and it holds no fd array;
// otherwise its fds are closed here and godbus receives the same message with
// the fds replaced by their indices (so a method call still gets an error reply
// rather than silence). The relay frames both directions, so outgoing fds stay
// attached to their own message as well.
//
// A daemon also answers calls through the relay: with Config.Calls set, method
// calls never reach godbus; the relay decodes them, runs the CallHandler and
// writes the reply to the bus, encoded once by this package's encoder, and
// Conn.Emit sends signals the same way. godbus keeps the connection's own
// calls, their replies and the signals it receives.
//
// Only unix: addresses are supported (path= and abstract=), which is what the
// system bus and dbus-daemon --print-address use.
//
// This package may import godbus and x/sys; it knows nothing of machined.
// cmd/machined uses it for the bus connection shared by dbusshim/machine1 and
// authz/polkit, and for the system bus connection of units/systemd.
package busconn
