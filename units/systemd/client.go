package systemd

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/machined-go/machined/service"
)

// DefaultCallTimeout bounds every bus call when CallTimeout is zero. It matches
// sd-bus's default method call timeout.
const DefaultCallTimeout = 25 * time.Second

// Bus names, paths and errors of the service manager.
const (
	busName     = "org.freedesktop.systemd1"
	managerPath = dbus.ObjectPath("/org/freedesktop/systemd1")
	managerIf   = "org.freedesktop.systemd1.Manager"
	unitIf      = "org.freedesktop.systemd1.Unit"
	propsGet    = "org.freedesktop.DBus.Properties.Get"

	errNoSuchUnit        = "org.freedesktop.systemd1.NoSuchUnit"
	errLoadFailed        = "org.freedesktop.systemd1.LoadFailed"
	errUnitExists        = "org.freedesktop.systemd1.UnitExists"
	errAlreadySubscribed = "org.freedesktop.systemd1.AlreadySubscribed"
	errUnknownProperty   = "org.freedesktop.DBus.Error.UnknownProperty"
	errPropertyReadOnly  = "org.freedesktop.DBus.Error.PropertyReadOnly"
	errInvalidArgs       = "org.freedesktop.DBus.Error.InvalidArgs"
)

// Client implements service.Units with org.freedesktop.systemd1. It is safe for
// concurrent use.
type Client struct {
	// CallTimeout bounds each bus call; zero means DefaultCallTimeout. Set it
	// before the first call; it is not guarded.
	CallTimeout time.Duration

	conn *dbus.Conn // owned by the caller
	log  *slog.Logger

	subMu      sync.Mutex
	subscribed bool // Subscribe and the JobRemoved match succeeded, guarded by subMu

	wg sync.WaitGroup // asynchronous UnrefUnit/StopUnit calls (tests wait on it)

}

var _ service.Units = (*Client)(nil)

// New returns a client that talks to the service manager on conn. The caller
// keeps ownership of conn. A nil logger discards logs.
func New(conn *dbus.Conn, logger *slog.Logger) *Client {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Client{conn: conn, log: logger}
}

// Available reports whether org.freedesktop.systemd1 currently has an owner on
// conn's bus. Activatable but unowned does not count: on a host whose PID 1 is
// not systemd the bus may list the name and then fail to start it.
func Available(ctx context.Context, conn *dbus.Conn) bool {
	ctx, cancel := context.WithTimeout(ctx, DefaultCallTimeout)
	defer cancel()
	var has bool
	err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, busName).Store(&has)
	return err == nil && has
}

// WaitAvailable is Available that waits, until ctx ends, for the name to get
// an owner. A service manager joins its bus only once the bus daemon runs, and
// a daemon the manager starts may reach the bus first (its own connection may
// be what starts the bus). It reports whether the name has an owner.
func WaitAvailable(ctx context.Context, conn *dbus.Conn) bool {
	ch := make(chan *dbus.Signal, 16)
	conn.Signal(ch)
	defer conn.RemoveSignal(ch)
	match := []dbus.MatchOption{
		dbus.WithMatchSender("org.freedesktop.DBus"),
		dbus.WithMatchInterface("org.freedesktop.DBus"),
		dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, busName),
	}
	if err := conn.AddMatchSignalContext(ctx, match...); err != nil {
		return false
	}
	defer conn.RemoveMatchSignalContext(context.Background(), match...)
	// Asked after the match is in place: an owner that came in between is
	// seen here, and a later one by its signal.
	for !Available(ctx, conn) {
		select {
		case <-ctx.Done():
			return false
		case s, ok := <-ch:
			if !ok {
				return false
			}
			if s.Name != "org.freedesktop.DBus.NameOwnerChanged" || len(s.Body) != 3 || s.Body[0] != busName {
				continue
			}
		}
	}
	return true
}

// Name implements service.Units.
func (c *Client) Name() string { return "systemd" }

func (c *Client) timeout() time.Duration {
	if c.CallTimeout > 0 {
		return c.CallTimeout
	}
	return DefaultCallTimeout
}

// call invokes a Manager method with the call timeout on top of ctx.
func (c *Client) call(ctx context.Context, method string, args ...any) *dbus.Call {
	return c.callObject(ctx, managerPath, managerIf+"."+method, args...)
}

func (c *Client) callObject(ctx context.Context, path dbus.ObjectPath, method string, args ...any) *dbus.Call {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	return c.conn.Object(busName, path).CallWithContext(ctx, method, 0, args...)
}

// errorName returns the D-Bus error name in err's chain, or "".
func errorName(err error) string {
	var e dbus.Error
	if errors.As(err, &e) {
		return e.Name
	}
	var pe *dbus.Error
	if errors.As(err, &pe) && pe != nil {
		return pe.Name
	}
	return ""
}

func hasName(err error, names ...string) bool {
	n := errorName(err)
	if n == "" {
		return false
	}
	for _, name := range names {
		if n == name {
			return true
		}
	}
	return false
}
