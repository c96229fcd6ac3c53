package varlink

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/sockio"
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

	// Input beyond the pooled buffer is an anonymous mapping reserved from
	// the server's budget: unmapping it gives the pages back to the kernel at
	// once, where a Go slice would keep the heap grown after a burst.
	budget     *inputBudget // nil: only MaxMessageSize bounds a connection
	privileged bool         // the peer may use the budget's reserve
	mapped     bool         // buf is an mmap'd region of cap(buf) bytes
	reserved   int          // bytes of budget held for buf

	buf     []byte    // buf[head:] is received and not yet returned
	bufp    *[]byte   // readBufs' holder of buf while buf is pooled
	head    int       // start of the next message in buf
	scanned int       // buf[head:scanned] holds no NUL
	batches []fdBatch // fds waiting for the message they belong to
	pending int       // fds in batches
	oob     []byte
	// oobSpace holds oob when the limits let it fit, as the defaults do: a
	// connection is then one allocation where it was several.
	oobSpace [128]byte
	pidfd    peerPidfd // what peer.pidfd points to
	// prev and next link the connection into its connGroup, group; group
	// is nil when the connection is in none.
	prev, next *Conn
	group      *connGroup
	rc         syscall.RawConn
	raw        rawFD                 // rc while the accept loop serves the connection, uc nil
	recvFn     func(fd uintptr) bool // c.tryRecv
	recv       recvResult            // what the last tryRecv got
	writer     sockio.Writer
	// noWait: fill makes one attempt and returns errNotReady rather than
	// park (fillNow).
	noWait bool
	// unsent is what the accept loop's socket did not take of a reply: the
	// loop never waits for room, so the worker it hands the connection to
	// sends this first.
	unsent []byte
	// msgDeadline bounds how long one message may take to arrive once its first
	// byte is here; zero while waiting between messages.
	msgDeadline time.Time

	ctx peerContext // of the calls (callContext)

	outMu sync.Mutex
	out   []byte // buffered replies of a stream
}

type recvResult struct {
	n, oobn, flags int
	err            error
}

// fdBatch holds the fds of one recvmsg; they belong to the message that contains
// the last byte that recvmsg brought (end, an offset into buf).
type fdBatch struct {
	end int
	fds []*os.File
}

func newConn(uc *net.UnixConn, lim Limits, peer Peer) *Conn {
	c := &Conn{uc: uc, lim: lim, peer: peer}
	c.rc, _ = uc.SyscallConn() // fails only for a closed socket; see fill and write
	return c
}

// Peer returns who is at the other end.
func (c *Conn) Peer() Peer { return c.peer }

// NetConn lets handlers reach the socket (varlink.GetNetConn).
// It is nil while the accept loop serves the connection (acceptloop.go).
func (c *Conn) NetConn() net.Conn {
	if c.uc == nil {
		return nil
	}
	return c.uc
}

// ReadMessage returns the next message without its NUL, and the fds sent with it.
// The message is valid until the next ReadMessage: handlers copy what they keep.
func (c *Conn) ReadMessage(ctx context.Context) ([]byte, []*os.File, error) {
	c.reclaim()
	for {
		if msg, fds, whole, err := c.scan(); whole || err != nil {
			return msg, fds, err
		}
		if err := c.fill(); err != nil {
			c.closeFDs()
			return nil, nil, err
		}
	}
}

// errNotReady: fillNow found nothing to read without waiting.
var errNotReady = errors.New("no whole message received yet")

// fillNow is one recvmsg that does not wait: errNotReady when nothing came.
func (c *Conn) fillNow() error {
	c.noWait = true
	err := c.fill()
	c.noWait = false
	return err
}

// scan takes the next whole message out of the buffer, if there is one
// (whole), and its fds; it enforces the size and fd limits.
func (c *Conn) scan() (msg []byte, fds []*os.File, whole bool, err error) {
	nul, err := c.nextEnd()
	if err != nil {
		c.closeFDs()
		return nil, nil, false, err
	}
	if nul < 0 {
		return nil, nil, false, nil
	}
	msg, fds, err = c.takeMessage(nul)
	return msg, fds, err == nil, err
}

// takeMessage takes the message nextEnd found ending at nul out of the
// buffer, with its fds; it enforces the fd limit.
func (c *Conn) takeMessage(nul int) (msg []byte, fds []*os.File, err error) {
	fds = c.takeFDs(nul)
	msg = c.take(nul)
	if len(fds) > c.lim.MaxFDsPerMessage {
		closeFiles(fds)
		return nil, nil, ErrTooManyFDs
	}
	return msg, fds, nil
}

// nextEnd finds the NUL that ends the next message, leaving the message in
// the buffer: buf[head:nul] is the message, and -1 says none is whole yet. It
// enforces the size limit.
func (c *Conn) nextEnd() (nul int, err error) {
	if i := bytes.IndexByte(c.buf[c.scanned:], 0); i >= 0 {
		nul = c.scanned + i
		if nul-c.head > c.lim.MaxMessageSize {
			return -1, ErrMessageTooLarge
		}
		return nul, nil
	}
	c.scanned = len(c.buf)
	if len(c.buf)-c.head > c.lim.MaxMessageSize {
		return -1, ErrMessageTooLarge
	}
	return -1, nil
}

// take returns buf[head:nul], without copying, and moves head past the NUL.
// The message stays in the buffer until the next ReadMessage (reclaim): a
// 16 MiB message is then never a second 16 MiB on the heap. The buffer is
// compacted only when it is drained or mostly consumed, so pipelined messages
// cost no copying of what follows them.
func (c *Conn) take(nul int) []byte {
	msg := c.buf[c.head:nul:nul]
	c.head = nul + 1
	c.scanned = c.head
	c.msgDeadline = time.Time{}
	return msg
}

// reclaim gives back the buffer of the last message taken once it is drained:
// its slice is no longer in use when the next one is asked for.
func (c *Conn) reclaim() {
	if c.buf != nil && c.head == len(c.buf) {
		c.buf, c.head, c.scanned = c.buf[:0], 0, 0
		c.release()
	}
}

// compact moves the unread rest to the front before the buffer grows.
func (c *Conn) compact() {
	if c.head == 0 {
		return
	}
	n := copy(c.buf, c.buf[c.head:])
	for i := range c.batches {
		c.batches[i].end -= c.head
	}
	c.scanned -= c.head
	c.buf, c.head = c.buf[:n], 0
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
		keep = append(keep, b)
	}
	c.batches = keep
	return fds
}

// readBufs lends read buffers to connections with a message in flight. An idle
// connection waits for readability without one, so a thousand idle clients
// cost their goroutine stacks and nothing more.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, readChunk); return &b }}

// tryRecv is one attempt of fill's read, inside RawConn.Read; it leaves its
// outcome in c.recv.
func (c *Conn) tryRecv(fd uintptr) bool {
	if c.buf == nil {
		c.bufp = readBufs.Get().(*[]byte)
		c.buf = (*c.bufp)[:0]
	}
	r := &c.recv
	if cap(c.buf)-len(c.buf) < readChunk/2 {
		c.compact()
		if cap(c.buf)-len(c.buf) < readChunk/2 {
			if r.err = c.grow(); r.err != nil {
				return true
			}
		}
	}
	r.n, r.oobn, r.flags, r.err = sockio.Recvmsg(fd, c.buf[len(c.buf):cap(c.buf)], c.oob)
	if r.err == unix.EAGAIN {
		c.release()     // park without a buffer when nothing is pending
		return c.noWait // not readable after all: park until it is, unless told not to
	}
	return true
}

func (c *Conn) fill() error {
	if c.rc == nil {
		return net.ErrClosed
	}
	if c.oob == nil {
		// One slot more than allowed, so that an oversized batch is seen whole
		// and refused rather than silently truncated.
		if n := unix.CmsgSpace(4 * (max(c.lim.MaxFDsPerMessage, 1) + 1)); n <= len(c.oobSpace) {
			c.oob = c.oobSpace[:n]
		} else {
			c.oob = make([]byte, n)
		}
	}
	if !c.noWait {
		c.armDeadline()
	}
	var err error
	if c.uc == nil {
		// The accept loop's socket: one attempt, without the RawConn and the
		// method value it would take.
		c.tryRecv(uintptr(c.raw.fd))
	} else {
		if c.recvFn == nil {
			c.recvFn = c.tryRecv // one method value per connection, not a closure per read
		}
		err = c.rc.Read(c.recvFn)
	}
	n, oobn, flags, rerr := c.recv.n, c.recv.oobn, c.recv.flags, c.recv.err
	c.recv = recvResult{}
	if err == nil {
		err = rerr
	}
	if c.noWait && err == unix.EAGAIN {
		return errNotReady
	}
	if err != nil {
		n, oobn, flags = 0, 0, 0
	}
	c.buf = c.buf[:len(c.buf)+n]
	if oobn > 0 || flags&unix.MSG_CTRUNC != 0 {
		fds, perr := parseRights(c.oob[:oobn])
		if perr != nil || flags&unix.MSG_CTRUNC != 0 || len(fds) > c.lim.MaxFDsPerMessage || c.pending+len(fds) > c.lim.MaxPendingFDs {
			closeFiles(fds)
			return ErrTooManyFDs
		}
		if len(fds) > 0 {
			c.batches = append(c.batches, fdBatch{end: len(c.buf) - 1, fds: fds})
			c.pending += len(fds)
		}
	}
	if err != nil || n == 0 {
		// The connection ends: an empty buffer goes back to the pool now,
		// not to the collector with the connection.
		c.release()
	}
	if err != nil {
		return err
	}
	if n == 0 {
		return io.EOF
	}
	return nil
}

// grow makes room for a message longer than the buffer: it doubles the
// buffer up to the largest one a message can need, reserving the growth from
// the budget first. The data starts at buf[0] (compact ran).
func (c *Conn) grow() error {
	limit := largestBuffer(c.lim.MaxMessageSize)
	size := min(max(2*cap(c.buf), cap(c.buf)+readChunk), limit)
	size = (size + os.Getpagesize() - 1) / os.Getpagesize() * os.Getpagesize()
	if size <= cap(c.buf) {
		return ErrMessageTooLarge
	}
	if err := c.budget.reserve(c.peer.UID, c.privileged, size-c.reserved); err != nil {
		return err
	}
	n := len(c.buf)
	var m []byte
	var err error
	if c.mapped {
		m, err = unix.Mremap(c.buf[:cap(c.buf)], size, unix.MREMAP_MAYMOVE)
	} else {
		m, err = unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err == nil {
			copy(m, c.buf)
			c.putPooled()
		}
	}
	if err != nil {
		c.budget.give(c.peer.UID, c.privileged, size-c.reserved)
		return err
	}
	c.buf, c.mapped, c.reserved = m[:n], true, size
	return nil
}

// release hands an empty buffer back: to the pool, or to the kernel and the
// budget.
func (c *Conn) release() {
	if c.buf != nil && len(c.buf) == 0 {
		if c.mapped {
			c.unmap()
		} else {
			c.putPooled()
		}
		c.buf, c.head, c.scanned = nil, 0, 0
	}
}

// putPooled hands a pooled buffer back through the holder it came in, so the
// hand-back allocates nothing.
func (c *Conn) putPooled() {
	if c.bufp != nil && cap(c.buf) == readChunk {
		*c.bufp = c.buf[:0]
		readBufs.Put(c.bufp)
	}
	c.bufp = nil
}

func (c *Conn) unmap() {
	unix.Munmap(c.buf[:cap(c.buf)])
	c.budget.give(c.peer.UID, c.privileged, c.reserved)
	c.buf, c.mapped, c.reserved = nil, false, 0
}

// freeInput drops whatever input the connection still holds; the server
// calls it when the connection ends.
func (c *Conn) freeInput() {
	if c.mapped {
		c.unmap()
	} else {
		c.putPooled()
	}
	c.buf, c.head, c.scanned = nil, 0, 0
}

// armDeadline: between messages a peer may stay silent for IdleTimeout; once a
// message has begun, all of it must arrive within IdleTimeout of its first
// byte. Re-arming on every read would let a peer that trickles a byte a minute
// hold its connection slot forever.
func (c *Conn) armDeadline() {
	if c.lim.IdleTimeout <= 0 || c.uc == nil {
		return
	}
	if len(c.buf) > c.head {
		if c.msgDeadline.IsZero() {
			c.msgDeadline = time.Now().Add(c.lim.IdleTimeout)
			c.uc.SetReadDeadline(c.msgDeadline)
		}
		return
	}
	c.uc.SetReadDeadline(time.Now().Add(c.lim.IdleTimeout))
}

func closeFiles(fds []*os.File) {
	for _, f := range fds {
		f.Close()
	}
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
		closeFiles(b.fds)
	}
	c.batches, c.pending = nil, 0
}

// streamSuffix ends every reply of a 'more' stream but the last (Call.Reply
// writes parameters, continues, error in that order).
var streamSuffix = []byte(`"continues":true}` + "\x00")

// Write sends a reply. Stream replies are buffered, so a List of 10,000 machines
// costs a few writes instead of 10,000; the final reply flushes.
func (c *Conn) Write(ctx context.Context, b []byte) (int, error) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	stream := bytes.HasSuffix(b, streamSuffix)
	if len(c.out) == 0 && !stream {
		// A lone reply, as most calls have, goes out as it is: buffering it
		// would cost a buffer per connection and a copy.
		c.setWriteDeadline()
		if err := c.write(b); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	c.out = append(c.out, b...)
	if stream && len(c.out) < flushThreshold {
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
	if c.uc == nil {
		return 0, errUnsupported // the accept loop serves no call that sends fds
	}
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
		err = c.write(b[n:])
	}
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

// Flush sends buffered stream replies now; the server calls it after every
// handler, so a handler that ends a stream without a final reply loses nothing.
func (c *Conn) Flush() error {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.flushLocked()
}

func (c *Conn) buffered() int {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return len(c.out)
}

// waitWritable parks on the netpoller until the socket can take data, or the
// peer is gone (the write that follows then fails). The write deadline is
// lifted meanwhile (the flush sets it again); the end of ctx wakes the wait
// with a past one.
func (c *Conn) waitWritable(ctx context.Context) error {
	if c.rc == nil {
		return net.ErrClosed
	}
	if c.uc == nil {
		return nil // the accept loop waits for nothing: the write will tell
	}
	c.uc.SetWriteDeadline(time.Time{})
	woken := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.uc.SetWriteDeadline(time.Unix(1, 0))
		close(woken)
	})
	defer func() {
		if !stop() {
			<-woken // its deadline must not land on a later write
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.rc.Write(func(fd uintptr) bool {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(pfd, 0)
		if err == unix.EINTR {
			return false
		}
		return err != nil || n > 0
	})
}

func (c *Conn) flushLocked() error {
	if len(c.out) == 0 {
		return nil
	}
	c.setWriteDeadline()
	err := c.write(c.out)
	if cap(c.out) > 4*flushThreshold {
		c.out = nil
	} else {
		c.out = c.out[:0]
	}
	return err
}

// write writes all of b (see internal/sockio for why not c.uc.Write).
func (c *Conn) write(b []byte) error {
	if c.rc == nil {
		return net.ErrClosed
	}
	if c.uc == nil {
		return c.writeNow(b)
	}
	return c.writer.Write(c.rc, b)
}

// writeNow is write on the accept loop's socket, which never waits: what the
// socket does not take now, and everything written after it, is kept in
// unsent, in order.
func (c *Conn) writeNow(b []byte) error {
	if len(c.unsent) == 0 {
		rest, err := sockio.Send(c.raw.fd, b)
		if err != unix.EAGAIN {
			return err
		}
		b = rest
	}
	c.unsent = append(c.unsent, b...)
	return nil
}

// sendUnsent sends what the accept loop could not, waiting for room as every
// write of a worker does; a connection handed over starts with it.
func (c *Conn) sendUnsent() error {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if len(c.unsent) == 0 {
		return nil
	}
	c.setWriteDeadline()
	err := c.writer.Write(c.rc, c.unsent)
	c.unsent = nil
	return err
}

func (c *Conn) setWriteDeadline() {
	if c.lim.WriteTimeout > 0 && c.uc != nil {
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
