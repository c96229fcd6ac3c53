package machine1

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/dbusshim/busconn"
	"github.com/machined-go/machined/service"
)

// BusName is the well-known name the server requests.
const BusName = "org.freedesktop.machine1"

// Interface names.
const (
	managerIface    = "org.freedesktop.machine1.Manager"
	machineIface    = "org.freedesktop.machine1.Machine"
	logControlIface = "org.freedesktop.LogControl1"
	propertiesIface = "org.freedesktop.DBus.Properties"
	introspectIface = "org.freedesktop.DBus.Introspectable"
	peerIface       = "org.freedesktop.DBus.Peer"
)

// Config is what the server needs besides the core.
type Config struct {
	Logger *slog.Logger
	// LogLevel is the daemon's log level, read and written by LogControl1.
	LogLevel *slog.LevelVar
	// LogTarget and SetLogTarget back LogControl1.LogTarget; nil reports
	// "console" and refuses changes.
	LogTarget    func() string
	SetLogTarget func(string) error
	// SyslogIdentifier is LogControl1.SyslogIdentifier; default "machined".
	SyslogIdentifier string
}

// Server answers org.freedesktop.machine1 on one bus connection.
type Server struct {
	cfg Config
	log *slog.Logger

	mgr  atomic.Pointer[service.Manager]
	conn atomic.Pointer[busconn.Conn]
	cred *credCache
	// departed ends the operations of callers that leave the bus.
	departed departures

	manager, machine, image, logControl *iface
	static                              map[dbus.ObjectPath]*object

	stopOnce sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup

	// callCtx is every call's context, cancelled by Close. It carries no
	// deadline: each wait a call can make (bus credentials, polkit, the unit
	// backend, a netns dump) bounds itself, and a timer per call showed up
	// at 5% of the daemon's CPU in a Register+Unregister profile.
	callCtx     context.Context
	cancelCalls context.CancelFunc
}

// New returns a server that answers nothing but "not ready" until Start.
// Dial the bus connection with it as busconn.Config.Calls.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LogLevel == nil {
		cfg.LogLevel = new(slog.LevelVar)
	}
	if cfg.SyslogIdentifier == "" {
		cfg.SyslogIdentifier = "machined"
	}
	s := &Server{cfg: cfg, log: cfg.Logger, stop: make(chan struct{})}
	s.callCtx, s.cancelCalls = context.WithCancel(context.Background())
	s.cred = newCredCache(s.log)
	s.cred.departed = s.departed.gone
	s.manager = managerInterface()
	s.machine = machineInterface()
	s.image = imageInterface()
	s.logControl = logControlInterface()
	s.static = s.staticObjects()
	return s
}

// AcceptFDs is the fd policy for busconn: fds may come with the replies to
// our own calls (ProcessFD of GetConnectionCredentials) and with the two
// methods that take one (LeaderPIDFD of RegisterMachineEx/CreateMachineEx).
// Every other fd is closed before godbus sees it.
func AcceptFDs(h busconn.Header) bool {
	switch h.Type {
	case busconn.TypeMethodReturn:
		return true
	case busconn.TypeMethodCall:
		return h.Path == string(managerPath) && (h.Interface == managerIface || h.Interface == "") &&
			(h.Member == "RegisterMachineEx" || h.Member == "CreateMachineEx")
	}
	return false
}

// Start binds the server to the core and the connection conn (dialled with
// the server as its Calls), forwards registry events as signals and requests BusName. It
// fails if the name is taken.
func (s *Server) Start(ctx context.Context, conn *busconn.Conn, mgr *service.Manager) error {
	if mgr == nil || conn == nil {
		return errors.New("machine1: Start needs a manager and a connection")
	}
	s.mgr.Store(mgr)
	s.conn.Store(conn)
	if err := s.cred.start(ctx, conn.Conn); err != nil {
		return err
	}
	// Watch before the name is ours, so no registration made through
	// D-Bus can miss its signal.
	snap, w := mgr.Watch(eventBuffer)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.forwardEvents(conn, mgr, snap, w)
	}()

	rctx, rcancel := context.WithTimeout(ctx, 25*time.Second)
	defer rcancel()
	var reply uint32
	err := conn.BusObject().CallWithContext(rctx, "org.freedesktop.DBus.RequestName", 0, BusName, uint32(dbus.NameFlagDoNotQueue)).Store(&reply)
	if err != nil {
		return fmt.Errorf("request bus name %s: %w", BusName, err)
	}
	switch dbus.RequestNameReply(reply) {
	case dbus.RequestNameReplyPrimaryOwner, dbus.RequestNameReplyAlreadyOwner:
		return nil
	}
	owner := ""
	conn.BusObject().CallWithContext(rctx, "org.freedesktop.DBus.GetNameOwner", 0, BusName).Store(&owner)
	if owner != "" {
		return fmt.Errorf("bus name %s is already owned by %s (another machined?)", BusName, owner)
	}
	return fmt.Errorf("bus name %s not acquired (reply %d)", BusName, reply)
}

// Close stops forwarding events. The connection belongs to the caller.
func (s *Server) Close() {
	s.stopOnce.Do(func() { close(s.stop); s.cancelCalls() })
	s.wg.Wait()
	s.cred.close()
}

// call is one method call being answered.
type call struct {
	s      *Server
	ctx    context.Context
	msg    *dbus.Message
	path   dbus.ObjectPath
	iface  string
	member string
	sender string
	body   []any
	obj    *object

	callerOnce sync.Once
	caller     service.Caller
	callerErr  error
	cleanup    []func()
}

func (c *call) mgr() *service.Manager { return c.s.mgr.Load() }

// callerOf returns who is calling, from the bus's credentials of the sender
// (cached per unique name) and the message's interactive-authorization flag.
// It carries no pidfd: only pinnedCallerOf's callers pin the caller's process.
func (c *call) callerOf() (service.Caller, error) {
	c.callerOnce.Do(func() {
		cr, err := c.s.cred.get(c.ctx, c.sender)
		if err != nil {
			c.callerErr = err
			return
		}
		c.caller = service.Caller{
			UID:         cr.uid,
			GID:         ^uint32(0), // the bus does not say; the core does not use it
			PID:         cr.pid,
			PIDFD:       -1,
			PIDFDID:     cr.pidfdID,
			Interactive: c.msg.Flags&dbus.FlagAllowInteractiveAuthorization != 0,
			BusName:     c.sender,
		}
	})
	return c.caller, c.callerErr
}

// pinnedCallerOf is callerOf with a dup of the caller's cached pidfd, for the
// calls that pin the caller's process: registrations (the caller supervises,
// or leads) and lookups of the caller's own machine. The cache may close its
// pidfd as soon as the caller leaves the bus, hence the dup.
func (c *call) pinnedCallerOf() (service.Caller, error) {
	caller, err := c.callerOf()
	if err != nil || caller.PIDFD >= 0 {
		return caller, err
	}
	if fd := c.s.cred.dupPIDFD(c.sender); fd >= 0 {
		c.caller.PIDFD = fd
		c.cleanup = append(c.cleanup, func() { closeFD(fd) })
	}
	return c.caller, nil
}

// ServeCall answers one method call; busconn runs it on a goroutine of its
// own (the server is the connection's busconn.CallHandler).
func (s *Server) ServeCall(msg *dbus.Message) (_ []any, err error) {
	c := &call{s: s, msg: msg, body: msg.Body}
	c.path, _ = msg.Headers[dbus.FieldPath].Value().(dbus.ObjectPath)
	c.iface, _ = msg.Headers[dbus.FieldInterface].Value().(string)
	c.member, _ = msg.Headers[dbus.FieldMember].Value().(string)
	c.sender, _ = msg.Headers[dbus.FieldSender].Value().(string)
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic answering D-Bus call", "path", c.path, "interface", c.iface, "member", c.member, "panic", r, "stack", string(debug.Stack()))
			err = newError(ErrFailed, "Internal error")
		}
	}()
	if s.mgr.Load() == nil {
		return nil, newError(ErrFailed, "machined is starting up")
	}
	c.ctx = s.callCtx
	defer func() {
		for _, f := range c.cleanup {
			f()
		}
	}()
	out, err := s.dispatch(c)
	if err != nil {
		de := toDBus(err)
		if de.Name == ErrFailed || de.Name == ErrJobFailed {
			s.log.Warn("D-Bus call failed", "interface", c.iface, "member", c.member, "path", c.path, "err", err)
		} else {
			s.log.Debug("D-Bus call refused", "interface", c.iface, "member", c.member, "path", c.path, "err", err)
		}
		return nil, de
	}
	return out, nil
}

// dispatch resolves the object, then the member, checks the signature and calls it.
func (s *Server) dispatch(c *call) ([]any, error) {
	if c.iface == peerIface {
		return s.peer(c)
	}
	if c.mgr().UserScope() {
		// A per-user instance: the bus may let other users reach us.
		caller, err := c.callerOf()
		if err != nil {
			return nil, err
		}
		if err := c.mgr().Admit(caller); err != nil {
			return nil, err
		}
	}
	obj, err := s.resolve(c)
	if err != nil {
		return nil, err
	}
	c.obj = obj
	switch c.iface {
	case propertiesIface:
		return s.properties(c)
	case introspectIface:
		if c.member != "Introspect" {
			break
		}
		if err := checkSig(c, ""); err != nil {
			return nil, err
		}
		return []any{introspect(obj.ifaces, obj.children(c))}, nil
	case "":
		// No interface: the first of the object's interfaces that has the member.
		for _, i := range obj.ifaces {
			if m := i.method(c.member); m != nil {
				c.iface = i.name
				return s.invoke(c, m)
			}
		}
		switch c.member {
		case "Introspect":
			c.iface = introspectIface
			return s.dispatch(c)
		case "Get", "GetAll", "Set":
			c.iface = propertiesIface
			return s.dispatch(c)
		}
	default:
		for _, i := range obj.ifaces {
			if i.name != c.iface {
				continue
			}
			if m := i.method(c.member); m != nil {
				return s.invoke(c, m)
			}
		}
	}
	return nil, errorf(ErrUnknownMethod, "Unknown method %s or interface %s.", c.member, c.iface)
}

// peer answers org.freedesktop.DBus.Peer on every path, as sd-bus does.
func (s *Server) peer(c *call) ([]any, error) {
	switch c.member {
	case "Ping":
		return nil, checkSig(c, "")
	case "GetMachineId":
		if err := checkSig(c, ""); err != nil {
			return nil, err
		}
		id := c.mgr().HostID()
		if id == ([16]byte{}) {
			return nil, errorf(ErrFailed, "No machine ID known.")
		}
		return []any{hex.EncodeToString(id[:])}, nil
	}
	return nil, errorf(ErrUnknownMethod, "Unknown method %s or interface %s.", c.member, c.iface)
}

func (s *Server) invoke(c *call, m *method) ([]any, error) {
	if err := checkSig(c, m.inSig()); err != nil {
		return nil, err
	}
	return m.fn(c)
}

func checkSig(c *call, want string) error {
	got := ""
	if v, ok := c.msg.Headers[dbus.FieldSignature]; ok {
		if sig, ok := v.Value().(dbus.Signature); ok {
			got = sig.String()
		}
	}
	if got != want {
		return errorf(ErrInvalidArgs, "Invalid arguments '%s' to call %s.%s(), expecting '%s'.", got, c.iface, c.member, want)
	}
	return nil
}

// object is what a path resolved to.
type object struct {
	path     dbus.ObjectPath
	ifaces   []*iface
	machine  service.MachineInfo // for machine objects
	image    service.Image       // for image objects
	children func(c *call) []string
}

func noChildren(*call) []string { return nil }

func staticChildren(names ...string) func(*call) []string {
	return func(*call) []string { return names }
}

// staticObjects are the objects whose path is fixed, built once: every
// manager call resolves one.
func (s *Server) staticObjects() map[dbus.ObjectPath]*object {
	objs := []*object{
		{path: "/", children: staticChildren("org")},
		{path: "/org", children: staticChildren("freedesktop")},
		{path: "/org/freedesktop", children: staticChildren("LogControl1", "machine1")},
		{path: managerPath, ifaces: []*iface{s.manager}, children: staticChildren("image", "machine")},
		{path: machineNode, children: s.machineChildren},
		{path: imageNode, children: s.imageChildren},
		{path: logControlPath, ifaces: []*iface{s.logControl}, children: noChildren},
	}
	m := make(map[dbus.ObjectPath]*object, len(objs))
	for _, o := range objs {
		m[o.path] = o
	}
	return m
}

// resolve maps a path to an object, or UnknownObject. Objects are read-only.
func (s *Server) resolve(c *call) (*object, error) {
	if o, ok := s.static[c.path]; ok {
		return o, nil
	}
	if label, ok := strings.CutPrefix(string(c.path), imagePrefix); ok && label != "" && !strings.Contains(label, "/") {
		return s.resolveImage(c, label)
	}
	label, ok := strings.CutPrefix(string(c.path), machinePrefix)
	if !ok || label == "" || strings.Contains(label, "/") {
		return nil, unknownObject(c.path)
	}
	var sel service.Selector
	var caller service.Caller
	if label == selfLabel {
		var err error
		if caller, err = c.pinnedCallerOf(); err != nil {
			return nil, err
		}
		sel = service.Selector{HasPID: true, PID: 0}
	} else {
		sel = service.Selector{Name: UnescapeLabel(label)}
	}
	mi, err := c.mgr().Get(caller, sel)
	if err != nil {
		if errors.Is(err, service.ErrNoSuchMachine) || errors.Is(err, service.ErrNoMachineForPID) {
			return nil, unknownObject(c.path)
		}
		if _, ok := service.AsInvalidArg(err); ok {
			return nil, unknownObject(c.path)
		}
		return nil, err
	}
	return &object{path: c.path, ifaces: []*iface{s.machine}, machine: mi, children: noChildren}, nil
}

// unknownObject is the error for a path no object lives at; built only when
// needed, as formatting it on every call cost 4 % of a registration.
func unknownObject(path dbus.ObjectPath) error {
	return errorf(ErrUnknownObject, "Unknown object '%s'.", path)
}

// machineChildren lists the escaped names of all machines (not "self").
func (s *Server) machineChildren(c *call) []string {
	list := c.mgr().ListBrief()
	out := make([]string, 0, len(list))
	for _, b := range list {
		out = append(out, EscapeLabel(b.Name))
	}
	return out
}
