package busconn

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/workerpool"
)

// DefaultSystemBus is the system bus address when DBUS_SYSTEM_BUS_ADDRESS is unset.
const DefaultSystemBus = "unix:path=/run/dbus/system_bus_socket"

// Config says which incoming fds godbus may receive.
type Config struct {
	// AcceptFDs reports whether the unix fds attached to an incoming message
	// may be handed to godbus (messages holding fd arrays never are). Nil
	// accepts fds on method returns only: replies to our own calls.
	AcceptFDs func(Header) bool
	// Calls, when set, answers every incoming method call in place of
	// godbus (see CallHandler); AcceptFDs applies to the calls' fds too.
	Calls CallHandler
	// MaxCalls bounds the calls served at once; beyond it a call is answered
	// org.freedesktop.DBus.Error.LimitsExceeded. 0 means DefaultMaxCalls.
	MaxCalls int
	// Logger receives relay diagnostics; nil discards them.
	Logger *slog.Logger
}

func (cfg Config) withDefaults() Config {
	if cfg.AcceptFDs == nil {
		cfg.AcceptFDs = func(h Header) bool { return h.Type == TypeMethodReturn }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// SystemBusAddress is $DBUS_SYSTEM_BUS_ADDRESS, or the standard socket.
func SystemBusAddress() string {
	if a := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"); a != "" {
		return a
	}
	return DefaultSystemBus
}

// Dial connects to the bus at address (the first of its ';'-separated entries
// that works), authenticates, says Hello and returns the connection. opts are
// passed to godbus (a handler, interceptors, a context).
func Dial(address string, cfg Config, opts ...dbus.ConnOption) (*Conn, error) {
	cfg = cfg.withDefaults()
	var errs []error
	for _, a := range strings.Split(address, ";") {
		if a == "" {
			continue
		}
		bus, err := dialUnix(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		conn, err := wrap(bus, cfg, opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return conn, nil
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("empty D-Bus address %q", address)
	}
	return nil, errors.Join(errs...)
}

// Connect is Dial for a bus socket connected elsewhere (another process's
// bus, reached as someone else): it authenticates on bus, says Hello and
// returns the guarded connection, which owns bus from now on.
func Connect(bus *net.UnixConn, cfg Config, opts ...dbus.ConnOption) (*Conn, error) {
	cfg = cfg.withDefaults()
	return wrap(bus, cfg, opts)
}

// dialUnix connects to one unix: address entry.
func dialUnix(entry string) (*net.UnixConn, error) {
	transport, keys, ok := strings.Cut(entry, ":")
	if !ok || transport != "unix" {
		return nil, fmt.Errorf("D-Bus address %q: only unix: addresses are supported", entry)
	}
	var path, abstract string
	for _, kv := range strings.Split(keys, ",") {
		k, v, _ := strings.Cut(kv, "=")
		uv, err := url.PathUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("D-Bus address %q: %w", entry, err)
		}
		switch k {
		case "path":
			path = uv
		case "abstract":
			abstract = uv
		}
	}
	switch {
	case path != "" && abstract == "":
	case abstract != "" && path == "":
		path = "@" + abstract
	default:
		return nil, fmt.Errorf("D-Bus address %q: need exactly one of path= and abstract=", entry)
	}
	return net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
}

// wrap puts the relay between bus and a new godbus connection.
func wrap(bus *net.UnixConn, cfg Config, opts []dbus.ConnOption) (*Conn, error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		bus.Close()
		return nil, err
	}
	godbusSide, err := fileConn(pair[0], "dbus-client")
	if err != nil {
		unix.Close(pair[1])
		bus.Close()
		return nil, err
	}
	relaySide, err := fileConn(pair[1], "dbus-relay")
	if err != nil {
		godbusSide.Close()
		bus.Close()
		return nil, err
	}
	bs, err := newBusSocket(bus)
	if err != nil {
		godbusSide.Close()
		relaySide.Close()
		return nil, err
	}
	r := &relay{bus: bs, local: relaySide, accept: cfg.AcceptFDs, calls: cfg.Calls, log: cfg.Logger, done: make(chan struct{}),
		workers: workerpool.New(idleCallWorkers, idleCallWorkerFor)}
	r.serial.Store(firstReplySerial)
	if r.maxCalls = cfg.MaxCalls; r.maxCalls <= 0 {
		r.maxCalls = DefaultMaxCalls
	}
	go r.run()
	conn, err := dbus.ConnectUnix(godbusSide, opts...)
	if err != nil {
		r.close()
		return nil, err
	}
	return &Conn{Conn: conn, r: r}, nil
}

func fileConn(fd int, name string) (*net.UnixConn, error) {
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	return c.(*net.UnixConn), nil
}
