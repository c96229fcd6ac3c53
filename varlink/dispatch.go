package varlink

import (
	"context"
	_ "embed"
	"log/slog"
	"os"
	"sort"
	"strings"

	vl "github.com/varlink/go/varlink"
)

// Identity is what org.varlink.service.GetInfo reports.
type Identity struct {
	Vendor, Product, Version, URL string
}

// Interface is one Varlink interface a Dispatcher serves: its name, its IDL
// text (answered to GetInterfaceDescription as it is) and its methods.
type Interface interface {
	Name() string
	Description() string
	// Serve answers one call of the interface (c.Member names the method).
	// Unknown members are the interface's to answer (MethodNotFound).
	Serve(ctx context.Context, c *Call) error
}

//go:embed idl/io.systemd.varlink
var systemdIDL string

// systemdErrors declares the io.systemd errors every sd-varlink server
// lists; it has no methods.
type systemdErrors struct{}

func (systemdErrors) Name() string        { return "io.systemd" }
func (systemdErrors) Description() string { return systemdIDL }
func (systemdErrors) Serve(ctx context.Context, c *Call) error {
	return c.ReplyMethodNotFound(ctx)
}

// Dispatcher is one Varlink service: the interfaces behind one socket. It
// parses each message once, answers org.varlink.service itself and routes
// every other call to its interface.
type Dispatcher struct {
	id     Identity
	ifaces map[string]Interface
	names  []string // sorted, as GetInfo lists them
	log    *slog.Logger
}

// NewDispatcher builds a service from interfaces; io.systemd (errors only) and
// org.varlink.service are added, as sd-varlink does.
func NewDispatcher(id Identity, log *slog.Logger, ifaces ...Interface) *Dispatcher {
	d := &Dispatcher{id: id, ifaces: map[string]Interface{}, log: log}
	d.names = append(d.names, "org.varlink.service")
	for _, i := range append([]Interface{systemdErrors{}}, ifaces...) {
		d.ifaces[i.Name()] = i
		d.names = append(d.names, i.Name())
	}
	sort.Strings(d.names)
	return d
}

// Handle is the Server Handler: one complete message at a time.
func (d *Dispatcher) Handle(ctx context.Context, conn *Conn, msg []byte, fds []*os.File) error {
	env, err := parseEnvelope(msg)
	if err != nil {
		closeFiles(fds)
		d.log.Debug("malformed varlink message", "err", err)
		// The NUL framing is intact, so the connection can go on after the error.
		return conn.WriteRaw(ctx, protocolError)
	}
	c := &Call{Method: env.Method, params: env.Parameters, more: env.More, oneway: env.Oneway, conn: conn, fds: fds}
	if c.params != nil {
		c.Parameters = &c.params
	}
	defer c.end()
	if env.Upgrade || (env.More && env.Oneway) {
		return c.ReplyError(ctx, NameProtocol, nil)
	}
	dot := strings.LastIndexByte(env.Method, '.')
	if dot <= 0 {
		return c.ReplyMethodNotFound(ctx)
	}
	iface, member := env.Method[:dot], env.Method[dot+1:]
	c.Member = member
	if iface == "org.varlink.service" {
		return d.serveService(ctx, c)
	}
	i, ok := d.ifaces[iface]
	if !ok {
		return c.ReplyMethodNotFound(ctx)
	}
	return i.Serve(ctx, c)
}

// serveService answers org.varlink.service: GetInfo with the interfaces sorted,
// GetInterfaceDescription with each interface's own IDL text.
func (d *Dispatcher) serveService(ctx context.Context, c *Call) error {
	switch c.Member {
	case "GetInfo":
		if err := DecodeParams(c.Parameters); err != nil {
			return ReplyParamError(ctx, c, err)
		}
		return c.Reply(ctx, struct {
			Vendor     string   `json:"vendor"`
			Product    string   `json:"product"`
			Version    string   `json:"version"`
			URL        string   `json:"url"`
			Interfaces []string `json:"interfaces"`
		}{d.id.Vendor, d.id.Product, d.id.Version, d.id.URL, d.names})
	case "GetInterfaceDescription":
		var name string
		if err := DecodeParams(c.Parameters, StrField("interface", &name, true)); err != nil {
			return ReplyParamError(ctx, c, err)
		}
		if name == "org.varlink.service" {
			return c.Reply(ctx, struct {
				Description string `json:"description"`
			}{orgVarlinkServiceIDL})
		}
		i, ok := d.ifaces[name]
		if !ok {
			return c.ReplyError(ctx, NameInterfaceNotFound, vl.InterfaceNotFound{Interface: name})
		}
		return c.Reply(ctx, struct {
			Description string `json:"description"`
		}{i.Description()})
	}
	return c.ReplyMethodNotFound(ctx)
}

// orgVarlinkServiceIDL is the standard interface every Varlink service has.
const orgVarlinkServiceIDL = `# The Varlink Service Interface is provided by every varlink service. It
# describes the service and the interfaces it implements.
interface org.varlink.service

# Get a list of all the interfaces a service provides and information
# about the implementation.
method GetInfo() -> (
  vendor: string,
  product: string,
  version: string,
  url: string,
  interfaces: []string
)

# Get the description of an interface that is implemented by this service.
method GetInterfaceDescription(interface: string) -> (description: string)

# The requested interface was not found.
error InterfaceNotFound (interface: string)

# The requested method was not found
error MethodNotFound (method: string)

# The interface defines the requested method, but the service does not
# implement it.
error MethodNotImplemented (method: string)

# One of the passed parameters is invalid.
error InvalidParameter (parameter: string)

# Client is denied access
error PermissionDenied ()

# Method is expected to be called with 'more' set to true, but wasn't
error ExpectedMore ()
`
