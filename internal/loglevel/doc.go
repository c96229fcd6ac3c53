// Package loglevel maps between BSD syslog levels (the numbers and names that
// io.systemd.service, org.freedesktop.LogControl1, the journal's <N> prefixes
// and --log-level speak) and log/slog levels.
//
// It knows nothing of machined and imports nothing of this module.
package loglevel
