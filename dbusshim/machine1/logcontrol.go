package machine1

import (
	"log/slog"
	"strconv"

	"github.com/godbus/dbus/v5"
)

// logControlInterface is org.freedesktop.LogControl1 on /org/freedesktop/LogControl1.
// Writing needs root or our uid, as sd-bus's privileged properties do.
func logControlInterface() *iface {
	return &iface{
		name: logControlIface,
		props: []property{
			{
				name: "LogLevel", sig: "s", emits: emitsFalse, privileged: true,
				get: func(c *call) (any, error) { return levelName(c.s.cfg.LogLevel.Level()), nil },
				set: func(c *call, v dbus.Variant) error {
					name := v.Value().(string)
					l, ok := parseLevel(name)
					if !ok {
						return errorf(ErrInvalidArgs, "Invalid log level '%s'", name)
					}
					c.s.cfg.LogLevel.Set(l)
					c.s.log.Info("log level changed over D-Bus", "level", levelName(l))
					return nil
				},
			},
			{
				name: "LogTarget", sig: "s", emits: emitsFalse, privileged: true,
				get: func(c *call) (any, error) {
					if c.s.cfg.LogTarget == nil {
						return "console", nil
					}
					return c.s.cfg.LogTarget(), nil
				},
				set: func(c *call, v dbus.Variant) error {
					target := v.Value().(string)
					if c.s.cfg.SetLogTarget == nil {
						return errorf(ErrNotSupported, "Changing the log target is not supported")
					}
					if err := c.s.cfg.SetLogTarget(target); err != nil {
						return errorf(ErrInvalidArgs, "Invalid log target '%s'", target)
					}
					return nil
				},
			},
			{
				name: "SyslogIdentifier", sig: "s", emits: emitsFalse,
				get: func(c *call) (any, error) { return c.s.cfg.SyslogIdentifier, nil },
			},
		},
	}
}

// Syslog level names and how they map onto slog: notice sits between info
// and warning; err and everything above it are slog's error.
var levelNames = []struct {
	name  string
	level slog.Level
}{
	{"emerg", slog.LevelError},
	{"alert", slog.LevelError},
	{"crit", slog.LevelError},
	{"err", slog.LevelError},
	{"warning", slog.LevelWarn},
	{"notice", slog.LevelInfo + 2},
	{"info", slog.LevelInfo},
	{"debug", slog.LevelDebug},
}

// parseLevel accepts a syslog level name or its number (0..7).
func parseLevel(s string) (slog.Level, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n >= len(levelNames) {
			return 0, false
		}
		return levelNames[n].level, true
	}
	for _, l := range levelNames {
		if l.name == s {
			return l.level, true
		}
	}
	return 0, false
}

// levelName is the syslog name of the most verbose level that l lets through.
func levelName(l slog.Level) string {
	switch {
	case l <= slog.LevelDebug:
		return "debug"
	case l <= slog.LevelInfo:
		return "info"
	case l < slog.LevelWarn:
		return "notice"
	case l <= slog.LevelWarn:
		return "warning"
	}
	return "err"
}
