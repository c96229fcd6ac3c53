package varlink

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

var (
	// ErrMessageTooLarge: more than Limits.MaxMessageSize bytes without a NUL.
	ErrMessageTooLarge = errors.New("varlink message too large")
	// ErrTooManyFDs: more file descriptors than Limits allow, or truncated ones.
	ErrTooManyFDs  = errors.New("too many file descriptors")
	errUnsupported = errors.New("not supported on this connection")
)

const (
	readChunk      = 16 << 10
	flushThreshold = 64 << 10
)

// Conn frames NUL-terminated Varlink messages over a unix socket, with fds. It
// is used by one goroutine at a time: the one serving the connection.
type Conn struct {
	uc   *net.UnixConn
	lim  Limits
	peer Peer

	buf     []byte    // received, not yet returned
	scanned int       // buf[:scanned] holds no NUL
	batches []fdBatch // fds waiting for the message they belong to
	pending int       // fds in batches
	chunk   []byte
	oob     []byte

	outMu sync.Mutex
	out   []byte // buffered replies of a stream
}

// fdBatch holds the fds of one recvmsg; they belong to the message that contains
// the last byte that recvmsg brought (end, an offset into buf).
type fdBatch struct {
	end int
	fds []*os.File
}

func newConn(uc *net.UnixConn, lim Limits, peer Peer) *Conn {
	return &Conn{uc: uc, lim: lim, peer: peer}
}

// Peer returns who is at the other end.
func (c *Conn) Peer() Peer { return c.peer }

// NetConn lets handlers reach the socket (varlink.GetNetConn).
func (c *Conn) NetConn() net.Conn { return c.uc }

// ReadMessage returns the next message without its NUL, and the fds sent with it.
func (c *Conn) ReadMessage(ctx context.Context) ([]byte, []*os.File, error) {
	for {
		if i := bytes.IndexByte(c.buf[c.scanned:], 0); i >= 0 {
			if c.scanned+i > c.lim.MaxMessageSize {
				c.closeFDs()
				return nil, nil, ErrMessageTooLarge
			}
			return c.take(c.scanned + i), c.takeFDs(c.scanned + i), nil
		}
		c.scanned = len(c.buf)
		if len(c.buf) > c.lim.MaxMessageSize {
			c.closeFDs()
			return nil, nil, ErrMessageTooLarge
		}
		if err := c.fill(); err != nil {
			c.closeFDs()
			return nil, nil, err
		}
	}
}

// take returns buf[:nul] and drops it and the NUL from buf.
func (c *Conn) take(nul int) []byte {
	msg := bytes.Clone(c.buf[:nul])
	n := copy(c.buf, c.buf[nul+1:])
	c.buf = c.buf[:n]
	c.scanned = 0
	if cap(c.buf) > 4*readChunk && n < readChunk {
		c.buf = bytes.Clone(c.buf) // give back what a large message grew
	}
	return msg
}

func (c *Conn) takeFDs(nul int) []*os.File {
	var fds []*os.File
	keep := c.batches[:0]
	for _, b := range c.batches {
		if b.end <= nul {
			fds = append(fds, b.fds...)
			c.pending -= len(b.fds)
			continue
		}
		b.end -= nul + 1
		keep = append(keep, b)
	}
	c.batches = keep
	return fds
}

func (c *Conn) fill() error {
	if c.chunk == nil {
		c.chunk = make([]byte, readChunk)
		c.oob = make([]byte, unix.CmsgSpace(4*max(c.lim.MaxFDsPerMessage, 1)))
	}
	if c.lim.IdleTimeout > 0 {
		// Between messages and mid-message alike: a peer that sends nothing for
		// this long is gone or stalling, and holds a slot.
		c.uc.SetReadDeadline(time.Now().Add(c.lim.IdleTimeout))
	}
	n, oobn, flags, _, err := c.uc.ReadMsgUnix(c.chunk, c.oob)
	n, oobn = max(n, 0), max(oobn, 0) // both are -1 on some errors
	c.buf = append(c.buf, c.chunk[:n]...)
	if oobn > 0 {
		fds, perr := parseRights(c.oob[:oobn])
		if perr != nil || flags&unix.MSG_CTRUNC != 0 || len(fds) > c.lim.MaxFDsPerMessage || c.pending+len(fds) > c.lim.MaxPendingFDs {
			for _, f := range fds {
				f.Close()
			}
			return ErrTooManyFDs
		}
		if len(fds) > 0 {
			c.batches = append(c.batches, fdBatch{end: len(c.buf) - 1, fds: fds})
			c.pending += len(fds)
		}
	}
	if n == 0 && err == nil {
		return io.EOF
	}
	return err
}

func parseRights(oob []byte) ([]*os.File, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []*os.File
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS {
			continue
		}
		raw, err := unix.ParseUnixRights(&m)
		if err != nil {
			return fds, err
		}
		for _, fd := range raw {
			fds = append(fds, os.NewFile(uintptr(fd), "varlink-fd"))
		}
	}
	return fds, nil
}

func (c *Conn) closeFDs() {
	for _, b := range c.batches {
		for _, f := range b.fds {
			f.Close()
		}
	}
	c.batches, c.pending = nil, 0
}

// streamSuffix ends every reply of a 'more' stream but the last: varlink/go
// marshals parameters, continues, error in that order.
var streamSuffix = []byte(`"continues":true}` + "\x00")

// Write sends a reply. Stream replies are buffered, so a List of 10,000 machines
// costs a few writes instead of 10,000; the final reply flushes.
func (c *Conn) Write(ctx context.Context, b []byte) (int, error) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	c.out = append(c.out, b...)
	if bytes.HasSuffix(b, streamSuffix) && len(c.out) < flushThreshold {
		return len(b), nil
	}
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	return len(b), nil
}

// WriteRaw sends a complete message (JSON and NUL) now.
func (c *Conn) WriteRaw(ctx context.Context, b []byte) error {
	_, err := c.Write(ctx, b)
	return err
}

// WriteWithFDs sends a reply carrying fds.
func (c *Conn) WriteWithFDs(ctx context.Context, b []byte, fds []*os.File) (int, error) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	raw := make([]int, len(fds))
	for i, f := range fds {
		raw[i] = int(f.Fd())
	}
	c.setWriteDeadline()
	n, _, err := c.uc.WriteMsgUnix(b, unix.UnixRights(raw...), nil)
	if err == nil && n < len(b) {
		_, err = c.uc.Write(b[n:])
	}
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

func (c *Conn) flushLocked() error {
	if len(c.out) == 0 {
		return nil
	}
	c.setWriteDeadline()
	_, err := c.uc.Write(c.out)
	if cap(c.out) > 4*flushThreshold {
		c.out = nil
	} else {
		c.out = c.out[:0]
	}
	return err
}

func (c *Conn) setWriteDeadline() {
	if c.lim.WriteTimeout > 0 {
		c.uc.SetWriteDeadline(time.Now().Add(c.lim.WriteTimeout))
	}
}

// Read, ReadBytes and ReadBytesWithFDs complete varlink/go's connection
// interfaces; we read through ReadMessage and never upgrade connections.
func (c *Conn) Read(context.Context, []byte) (int, error) { return 0, errUnsupported }

func (c *Conn) ReadBytes(context.Context, byte) ([]byte, error) { return nil, errUnsupported }

func (c *Conn) ReadBytesWithFDs(context.Context, byte) ([]byte, []*os.File, error) {
	return nil, nil, errUnsupported
}
