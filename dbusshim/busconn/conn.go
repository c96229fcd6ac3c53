package busconn

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"
)

// Conn is a guarded bus connection. The embedded godbus connection makes the
// connection's own calls and receives their replies and the signals it
// subscribed to; the relay answers incoming calls (Config.Calls) and sends
// the signals of Emit.
type Conn struct {
	*dbus.Conn
	r *relay
}

// Emit sends the signal name ("interface.member") from path, encoded once and
// written straight to the bus: godbus's own Emit would pass it through the
// relay's socketpair and encode it twice. It shadows dbus.Conn.Emit.
func (c *Conn) Emit(path dbus.ObjectPath, name string, values ...any) error {
	out, err := c.signal(path, name, values)
	if err != nil {
		return err
	}
	return c.r.send(&out)
}

// Signal is one signal of EmitAll: Name is "interface.member".
type Signal struct {
	Path dbus.ObjectPath
	Name string
	Body []any
}

// EmitAll sends sigs in order, as Emit would one by one, but written together:
// the bus daemon then wakes once for a burst of them rather than once each. A
// signal that cannot be encoded is skipped, and the first such error returned.
func (c *Conn) EmitAll(sigs []Signal) error {
	var first error
	out := make([]outMessage, 0, len(sigs))
	for _, s := range sigs {
		m, err := c.signal(s.Path, s.Name, s.Body)
		if err != nil {
			first = cmp.Or(first, err)
			continue
		}
		out = append(out, m)
	}
	return cmp.Or(first, c.r.sendAll(out))
}

// signal is the message of a signal name ("interface.member") from path, with
// the next serial.
func (c *Conn) signal(path dbus.ObjectPath, name string, values []any) (outMessage, error) {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || i == len(name)-1 {
		return outMessage{}, fmt.Errorf("busconn: signal name %q is not interface.member", name)
	}
	return outMessage{Type: TypeSignal, Serial: c.r.serial.Add(1), Path: path, Interface: name[:i], Member: name[i+1:], Body: values}, nil
}
