package busconn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/sockio"
	"github.com/machined-go/machined/internal/workerpool"
)

// maxFDsPerRead sizes the control buffer: more fds than any bus forwards in one
// message (dbus-daemon's system bus allows 16, its maximum is 1024).
const maxFDsPerRead = 1024

// relay copies D-Bus traffic between the bus socket and godbus's end of a
// socketpair. Both directions are framed after the SASL exchange.
type relay struct {
	bus    *busSocket
	local  *net.UnixConn
	accept func(Header) bool // incoming messages whose fds godbus may have
	calls  CallHandler       // nil: method calls go to godbus
	log    *slog.Logger

	busMu    sync.Mutex    // one message at a time on the bus socket
	serial   atomic.Uint32 // of the replies and signals the relay sends
	inflight atomic.Int64  // calls being served
	maxCalls int
	workers  *workerpool.Pool // the goroutines calls are served on
	headers  headerCache      // of the calls decoded; the bus reader's alone

	begun     atomic.Bool // the client sent BEGIN: the bus now speaks messages
	closeOnce sync.Once
	done      chan struct{}
}

func (r *relay) close() {
	r.closeOnce.Do(func() {
		r.bus.shutdown()
		r.local.Close()
		close(r.done)
		r.workers.Stop()
	})
}

func (r *relay) run() {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.pump(r.readLocal(), true) }()
	go func() { defer wg.Done(); r.pump(r.bus.readMsg, false) }()
	wg.Wait()
	r.busMu.Lock()
	r.bus.release()
	r.busMu.Unlock()
}

// readLocal reads godbus's traffic from the socketpair.
func (r *relay) readLocal() func(p, oob []byte) (int, int, int, error) {
	rc, err := r.local.SyscallConn()
	if err != nil {
		return func([]byte, []byte) (int, int, int, error) { return 0, 0, 0, err }
	}
	return func(p, oob []byte) (int, int, int, error) { return sockio.ReadMsg(rc, p, oob) }
}

// writeBus writes whole messages (or SASL lines) to the bus socket, which
// godbus's traffic and the relay's own replies share.
func (r *relay) writeBus(b []byte, fds []int) error {
	r.busMu.Lock()
	defer r.busMu.Unlock()
	return r.bus.write(b, fds)
}

// write writes to the bus when up, else to godbus.
func (r *relay) write(up bool, b []byte, fds []int) error {
	if up {
		return r.writeBus(b, fds)
	}
	return writeAll(r.local, b, fds)
}

// pump moves data read by read to the other side until either side fails,
// then closes both. up is the godbus-to-bus direction.
func (r *relay) pump(read func(p, oob []byte) (n, oobn, flags int, err error), up bool) {
	defer r.close()
	var (
		buf     []byte
		fds     []int // received, not yet attached to a message
		line    []byte
		chunk   = make([]byte, 64<<10)
		oob     = make([]byte, unix.CmsgSpace(4*maxFDsPerRead))
		framing bool
	)
	defer func() { closeFDs(fds) }()
	for {
		n, oobn, flags, err := read(chunk, oob)
		if oobn > 0 {
			got, perr := rights(oob[:oobn])
			fds = append(fds, got...)
			if perr != nil {
				r.fail(up, perr)
				return
			}
		}
		if flags&unix.MSG_CTRUNC != 0 {
			r.fail(up, errors.New("control data truncated"))
			return
		}
		if n > 0 {
			data := chunk[:n]
			if !framing {
				if up {
					// SASL lines until BEGIN; whatever follows BEGIN in the
					// same read is already a message.
					var rest []byte
					line, rest, framing = scanBegin(line, data)
					if framing {
						r.begun.Store(true)
						if err := r.write(up, data[:len(data)-len(rest)], nil); err != nil {
							return
						}
						data = rest
					} else if err := r.write(up, data, nil); err != nil {
						return
					} else {
						data = nil
					}
				} else if r.begun.Load() {
					framing = true
				} else {
					if err := r.write(up, data, nil); err != nil {
						return
					}
					data = nil
				}
			}
			buf = append(buf, data...)
		}
		if framing && len(buf) > 0 {
			var ferr error
			buf, fds, ferr = r.forward(buf, fds, up)
			if ferr != nil {
				r.fail(up, ferr)
				return
			}
		} else if !framing && len(fds) > 0 {
			// Nobody sends fds during authentication.
			closeFDs(fds)
			fds = fds[:0]
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				r.log.Debug("bus relay read", "up", up, "err", err)
			}
			return
		}
	}
}

func (r *relay) fail(up bool, err error) {
	dir := "from the bus"
	if up {
		dir = "to the bus"
	}
	r.log.Warn("closing D-Bus connection: bad traffic "+dir, "err", err)
}

// forward writes every complete message at the start of buf to the other side and
// returns the unconsumed rest. Runs of messages without fds go out in one
// write; a message with fds goes out alone, with its fds, or without them
// when they are refused.
func (r *relay) forward(buf []byte, fds []int, up bool) ([]byte, []int, error) {
	start := 0 // first byte not yet written
	pos := 0
	flush := func(end int) error {
		if end > start {
			if err := r.write(up, buf[start:end], nil); err != nil {
				return err
			}
		}
		start = end
		return nil
	}
	for {
		n, err := messageLen(buf[pos:])
		if err != nil {
			return buf, fds, err
		}
		if n == 0 || pos+n > len(buf) {
			break
		}
		msg := buf[pos : pos+n]
		ours := !up && r.calls != nil && msg[1] == TypeMethodCall
		if len(fds) == 0 && !ours {
			// Without fds in hand no message can carry any (the bus sends
			// them with the message's first byte), so skip the header.
			pos += n
			continue
		}
		var h Header
		if len(fds) > 0 {
			if h, err = parseHeader(msg); err != nil {
				return buf, fds, err
			}
			if int(h.UnixFDs) > len(fds) {
				return buf, fds, fmt.Errorf("message announces %d fds, %d arrived: %w", h.UnixFDs, len(fds), errProtocol)
			}
		}
		if ours {
			if err := flush(pos); err != nil {
				return buf, fds, err
			}
			var mine []int
			if h.UnixFDs > 0 {
				mine = append(mine, fds[:h.UnixFDs]...)
			}
			r.takeCall(msg, h, mine)
			fds = append(fds[:0], fds[h.UnixFDs:]...)
			pos += n
			start = pos
			continue
		}
		if h.UnixFDs == 0 {
			pos += n
			continue
		}
		if err := flush(pos); err != nil {
			return buf, fds, err
		}
		mine := fds[:h.UnixFDs]
		if up || (r.accept(h) && safeForGodbus(h, msg)) {
			err = r.write(up, msg, mine)
		} else {
			r.log.Debug("dropping unix fds from incoming message", "type", h.Type, "interface", h.Interface, "member", h.Member, "signature", h.Signature, "fds", h.UnixFDs)
			if clean := withoutFDs(msg); clean != nil {
				err = r.write(up, clean, nil)
			}
		}
		closeFDs(mine)
		fds = append(fds[:0], fds[h.UnixFDs:]...)
		if err != nil {
			return buf, fds, err
		}
		pos += n
		start = pos
	}
	if err := flush(pos); err != nil {
		return buf, fds, err
	}
	if pos == 0 {
		return buf, fds, nil
	}
	rest := append(buf[:0], buf[pos:]...)
	return rest, fds, nil
}

// writeAll writes b with fds attached to its first byte.
func writeAll(c *net.UnixConn, b []byte, fds []int) error {
	if len(fds) > 0 {
		n, _, err := c.WriteMsgUnix(b, unix.UnixRights(fds...), nil)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	return sockio.Write(rc, b)
}

// rights returns the fds of every SCM_RIGHTS message in oob.
func rights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var out []int
	for i := range msgs {
		if msgs[i].Header.Level != unix.SOL_SOCKET || msgs[i].Header.Type != unix.SCM_RIGHTS {
			continue
		}
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			return out, err
		}
		out = append(out, fds...)
	}
	return out, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

// scanBegin follows the client's SASL lines: line holds an incomplete line
// from earlier reads. It reports whether data contains the BEGIN command and
// returns the bytes after it.
func scanBegin(line, data []byte) (rest []byte, after []byte, found bool) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return append(line, data...), nil, false
		}
		line = append(line, data[:i+1]...)
		data = data[i+1:]
		l := bytes.TrimLeft(line, "\x00")
		if bytes.Equal(bytes.TrimRight(l, "\r\n"), []byte("BEGIN")) {
			return nil, data, true
		}
		line = line[:0]
	}
	return line, nil, false
}
