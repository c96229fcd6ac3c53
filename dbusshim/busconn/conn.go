package busconn

import (
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
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || i == len(name)-1 {
		return fmt.Errorf("busconn: signal name %q is not interface.member", name)
	}
	out := outMessage{Type: TypeSignal, Serial: c.r.serial.Add(1), Path: path, Interface: name[:i], Member: name[i+1:], Body: values}
	return c.r.send(&out)
}
