package machine1

import (
	"github.com/godbus/dbus/v5"
	"github.com/machined-go/machined/internal/loglevel"
)

// logControlInterface is org.freedesktop.LogControl1 on /org/freedesktop/LogControl1.
// Writing needs root or our uid, as sd-bus's privileged properties do.
func logControlInterface() *iface {
	return &iface{
		name: logControlIface,
		props: []property{
			{
				name: "LogLevel", sig: "s", emits: emitsFalse, privileged: true,
				get: func(c *call) (any, error) { return loglevel.Name(c.s.cfg.LogLevel.Level()), nil },
				set: func(c *call, v dbus.Variant) error {
					name := v.Value().(string)
					l, ok := loglevel.Parse(name)
					if !ok {
						return errorf(ErrInvalidArgs, "Invalid log level '%s'", name)
					}
					c.s.cfg.LogLevel.Set(l)
					c.s.log.Info("log level changed over D-Bus", "level", loglevel.Name(l))
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
