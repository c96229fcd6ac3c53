// Package bustest starts a private dbus-daemon, and polkitd on it, for tests:
// those of the D-Bus packages (dbusshim/..., units/systemd, authz/polkit) and
// the integration tests in tests/. Nothing touches the host's buses. It is
// imported by tests only.
//
// It must import nothing of this module outside internal/.
package bustest
