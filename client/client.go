package client

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"

	vl "github.com/varlink/go/varlink"
	"golang.org/x/sys/unix"
)

// DefaultPath is where the system's machine manager serves io.systemd.Machine.
const DefaultPath = "/run/systemd/machine/io.systemd.Machine"

// Client talks to one machine socket. See the package documentation for how it
// uses connections.
type Client struct {
	path string
	// interactive asks the daemon to let polkit query the user for
	// authentication where it supports that.
	interactive bool
	dialFn      func(ctx context.Context, path string) (net.Conn, error)

	mu     sync.Mutex
	idle   *conn
	closed bool
}

// conn is a Varlink connection with the socket under it, which take looks at
// to tell whether the daemon has closed an idle connection meanwhile.
type conn struct {
	*vl.Connection
	raw *net.UnixConn
}

// Option changes how a Client calls the daemon.
type Option func(*Client)

// WithInteractiveAuthentication sets allowInteractiveAuthentication on every
// call that has it, so that polkit may ask the user instead of refusing.
func WithInteractiveAuthentication() Option {
	return func(c *Client) { c.interactive = true }
}

// WithDialer makes the Client connect with dial instead of a plain connect to
// the path, e.g. to connect under other credentials. Fds travel only over a
// *net.UnixConn.
func WithDialer(dial func(ctx context.Context, path string) (net.Conn, error)) Option {
	return func(c *Client) { c.dialFn = dial }
}

// Dial connects to the machine socket at path (DefaultPath when empty). The
// context bounds the connect only.
func Dial(ctx context.Context, path string, opts ...Option) (*Client, error) {
	if path == "" {
		path = DefaultPath
	}
	c := &Client{path: path}
	for _, o := range opts {
		o(c)
	}
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.idle = conn
	return c, nil
}

// Close closes the idle connection; calls still running close theirs when they end.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.idle == nil {
		return nil
	}
	err := c.idle.Close()
	c.idle = nil
	return err
}

// ErrClosed is returned by calls on a closed Client.
var ErrClosed = errors.New("client: closed")

func (c *Client) dial(ctx context.Context) (*conn, error) {
	d := &rawDialer{dial: c.dialFn}
	vc, err := vl.NewConnectionWithDialer(ctx, "unix:"+c.path, d)
	if err != nil {
		return nil, err
	}
	return &conn{vc, d.raw}, nil
}

// rawDialer dials a unix socket and remembers it.
type rawDialer struct {
	dial func(ctx context.Context, path string) (net.Conn, error)
	raw  *net.UnixConn
}

func (d *rawDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var nc net.Conn
	var err error
	if d.dial != nil {
		nc, err = d.dial(ctx, addr)
	} else {
		var nd net.Dialer
		nc, err = nd.DialContext(ctx, network, addr)
	}
	if err != nil {
		return nil, err
	}
	d.raw, _ = nc.(*net.UnixConn)
	return nc, nil
}

// usable reports whether an idle connection can carry a call: the daemon has
// not closed it (it closes idle connections after a while) and has sent
// nothing unasked.
func (cn *conn) usable() bool {
	if cn.raw == nil {
		return true
	}
	rc, err := cn.raw.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		ok = err == unix.EAGAIN
		return true
	})
	return ok
}

// take hands out the idle connection, or a new one.
func (c *Client) take(ctx context.Context) (*conn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	conn := c.idle
	c.idle = nil
	c.mu.Unlock()
	if conn != nil {
		if conn.usable() {
			return conn, nil
		}
		conn.Close()
	}
	return c.dial(ctx)
}

// give returns a connection whose last reply has been read in full.
func (c *Client) give(conn *conn) {
	c.mu.Lock()
	if c.closed || c.idle != nil {
		c.mu.Unlock()
		conn.Close()
		return
	}
	c.idle = conn
	c.mu.Unlock()
}

// call makes one call that has one reply; fds sent with it are closed.
func (c *Client) call(ctx context.Context, method string, in, out any) error {
	fds, err := c.callFDs(ctx, method, in, out)
	for _, f := range fds {
		if f != nil {
			f.Close()
		}
	}
	return err
}

// callFDs makes one call that has one reply and returns the fds of the reply,
// which the caller owns, also with an error.
func (c *Client) callFDs(ctx context.Context, method string, in, out any) ([]*os.File, error) {
	conn, err := c.take(ctx)
	if err != nil {
		return nil, err
	}
	if out == nil {
		// varlink/go decodes every reply's parameters into out.
		out = &struct{}{}
	}
	fds, err := conn.CallWithFDs(ctx, method, in, out, nil)
	err = convert(err)
	c.release(conn, err)
	return fds, err
}

// release keeps conn for the next call unless err says the connection can no
// longer be trusted to be at a message boundary.
func (c *Client) release(conn *conn, err error) {
	var de *Error
	if err == nil || errors.As(err, &de) {
		c.give(conn)
		return
	}
	conn.Close()
}

// stream makes a call with "more" and yields each reply decoded as a T; the
// connection is kept for the next call only if the stream ended with its last
// reply or an error reply. Fds sent with replies are closed.
func stream[T any](ctx context.Context, c *Client, method string, in any, yield func(T, error) bool) {
	var zero T
	conn, err := c.take(ctx)
	if err != nil {
		yield(zero, err)
		return
	}
	receive, err := conn.Send(ctx, method, in, vl.More)
	if err != nil {
		conn.Close()
		yield(zero, convert(err))
		return
	}
	for {
		var v T
		flags, err := receive(ctx, &v)
		if err != nil {
			err = convert(err)
			c.release(conn, err)
			yield(zero, err)
			return
		}
		more := flags&vl.Continues != 0
		if !more {
			c.give(conn)
		}
		if !yield(v, nil) {
			if more {
				// Replies of the stream are still on their way.
				conn.Close()
			}
			return
		}
		if !more {
			return
		}
	}
}
