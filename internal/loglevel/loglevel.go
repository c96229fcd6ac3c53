package loglevel

import (
	"log/slog"
	"strconv"
)

// Notice sits between slog's info and warning, as syslog's notice does.
const Notice = slog.LevelInfo + 2

// names are the syslog level names by number; err and everything more severe
// map to slog's error, the most severe level slog has.
var names = [...]struct {
	name  string
	level slog.Level
}{
	{"emerg", slog.LevelError},
	{"alert", slog.LevelError},
	{"crit", slog.LevelError},
	{"err", slog.LevelError},
	{"warning", slog.LevelWarn},
	{"notice", Notice},
	{"info", slog.LevelInfo},
	{"debug", slog.LevelDebug},
}

// FromSyslog maps a syslog level number; beyond debug counts as debug, below
// emerg as emerg.
func FromSyslog(n int) slog.Level {
	return names[min(max(n, 0), len(names)-1)].level
}

// ToSyslog is the syslog number of the most verbose level l lets through.
func ToSyslog(l slog.Level) int {
	switch {
	case l <= slog.LevelDebug:
		return 7
	case l <= slog.LevelInfo:
		return 6
	case l < slog.LevelWarn:
		return 5
	case l <= slog.LevelWarn:
		return 4
	}
	return 3
}

// Name is the syslog name of the most verbose level l lets through.
func Name(l slog.Level) string { return names[ToSyslog(l)].name }

// Parse accepts a syslog level name, its number (0..7), or slog's spellings
// "warn" and "error".
func Parse(s string) (slog.Level, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n >= len(names) {
			return 0, false
		}
		return names[n].level, true
	}
	switch s {
	case "warn":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	for _, l := range names {
		if l.name == s {
			return l.level, true
		}
	}
	return 0, false
}
