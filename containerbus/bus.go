package containerbus

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/dbusshim/busconn"
	"github.com/machined-go/machined/service"
)

// CallTimeout bounds the connection and the call, as sd-bus's default method
// timeout does.
const CallTimeout = 25 * time.Second

const (
	managerDest = "org.freedesktop.systemd1"
	managerPath = dbus.ObjectPath("/org/freedesktop/systemd1")
	managerIf   = "org.freedesktop.systemd1.Manager"
)

// Bus implements service.ContainerBus.
type Bus struct {
	hostAddress string
}

var _ service.ContainerBus = (*Bus)(nil)

// New returns a Bus that reaches the host's service manager at hostAddress
// (a D-Bus address, busconn.SystemBusAddress() on a real host).
func New(hostAddress string) *Bus { return &Bus{hostAddress: hostAddress} }

// StartUnit implements service.ContainerBus.
func (b *Bus) StartUnit(ctx context.Context, bus *os.File, unit string) error {
	return b.callManager(ctx, bus, "StartUnit", unit, "replace")
}

// StartShell implements service.ContainerBus.
func (b *Bus) StartShell(ctx context.Context, bus *os.File, u service.ShellUnit) error {
	return b.callManager(ctx, bus, "StartTransientUnit", u.Name, "fail", shellProperties(u), []auxUnit{})
}

// callManager calls a method of the service manager that answers with the job
// it queued, on a connection of its own over bus (see connect).
func (b *Bus) callManager(ctx context.Context, bus *os.File, method string, args ...any) error {
	conn, err := b.connect(bus)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	var job dbus.ObjectPath
	return conn.Object(managerDest, managerPath).CallWithContext(ctx, managerIf+"."+method, 0, args...).Store(&job)
}

// connect wraps the connected socket bus, or dials the host's bus when bus is
// nil, and says Hello. bus is ours from here on.
func (b *Bus) connect(bus *os.File) (*busconn.Conn, error) {
	if bus == nil {
		return busconn.Dial(b.hostAddress, busconn.Config{})
	}
	c, err := net.FileConn(bus)
	bus.Close()
	if err != nil {
		return nil, fmt.Errorf("system bus socket: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("system bus socket is not a unix socket")
	}
	// The handshake runs before any context applies: bound it by the socket.
	uc.SetDeadline(time.Now().Add(CallTimeout))
	conn, err := busconn.Connect(uc, busconn.Config{})
	if err != nil {
		return nil, fmt.Errorf("system bus: %w", err)
	}
	return conn, nil
}
