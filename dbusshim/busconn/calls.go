package busconn

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"runtime/debug"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/internal/bufpool"
)

// CallHandler answers the method calls that reach a connection dialled with
// it. With one, no method call goes through godbus: the relay decodes the call,
// runs ServeCall on a goroutine of its own and writes the reply to the bus
// itself, encoded once (godbus's unix transport encodes every outgoing message
// twice, the first time only to count its fds). godbus keeps the connection's
// outgoing calls, their replies and signals.
type CallHandler interface {
	// ServeCall returns the reply body, or the error to answer with: a
	// dbus.Error or *dbus.Error is sent as it is, anything else as
	// org.freedesktop.DBus.Error.Failed. The fds in msg are the handler's;
	// unix fds in the reply body are sent, then closed.
	ServeCall(msg *dbus.Message) (body []any, err error)
}

// firstReplySerial starts the serials of the replies the relay sends. godbus
// numbers its own messages upwards from 1 on the same connection; a reply's
// serial is never answered, so the bus and the callers only need it non-zero,
// and starting half-way keeps the two counters apart anyway.
const firstReplySerial = 1 << 31

// DefaultMaxCalls bounds the calls a connection serves at once (Config.MaxCalls).
const DefaultMaxCalls = 4096

// takeCall decodes one method call from the bus and starts serving it. fds
// arrived with it and are consumed here: handed to the handler, or closed.
func (r *relay) takeCall(msg []byte, h Header, fds []int) {
	if len(fds) > 0 && !(r.accept(h) && safeForGodbus(h, msg)) {
		r.log.Debug("dropping unix fds from incoming call", "interface", h.Interface, "member", h.Member, "signature", h.Signature, "fds", len(fds))
		closeFDs(fds)
		fds = nil
		if msg = withoutFDs(msg); msg == nil {
			return
		}
	}
	m, serial, err := decodeCall(msg, fds, &r.headers)
	if err != nil {
		closeFDs(fds)
		r.log.Debug("dropping undecodable method call", "err", err)
		return
	}
	if r.inflight.Add(1) > int64(r.maxCalls) {
		// The bus bounds a client's calls awaiting replies, not those sent
		// with NO_REPLY_EXPECTED; without this a flood of them would start
		// goroutines without end.
		r.inflight.Add(-1)
		closeFDs(fds)
		r.log.Debug("refusing method call: too many in progress", "limit", r.maxCalls)
		r.reply(m, serial, nil, dbus.NewError(limitsExceededName, []any{"Too many calls in progress"}))
		return
	}
	r.workers.Run(func() {
		defer r.inflight.Add(-1)
		body, err := r.callHandler(m)
		r.reply(m, serial, body, err)
	})
}

// Call goroutines kept for reuse: a registration runs deep enough (decode,
// the core, the state file, the reply) to grow a fresh goroutine's stack by
// copying, which was 7 % of the daemon's CPU per D-Bus registration.
const (
	idleCallWorkers   = 4
	idleCallWorkerFor = 3 * time.Second
)

const limitsExceededName = "org.freedesktop.DBus.Error.LimitsExceeded"

// reply answers the call m (with serial) with body, or with err when set.
func (r *relay) reply(m *dbus.Message, serial uint32, body []any, err error) {
	if m.Flags&dbus.FlagNoReplyExpected != 0 {
		return
	}
	out := outMessage{Type: TypeMethodReturn, Serial: r.serial.Add(1), ReplySerial: serial, Body: body}
	if sender, ok := m.Headers[dbus.FieldSender].Value().(string); ok {
		out.Destination = sender
	}
	if err != nil {
		out.Type, out.ErrorName, out.Body = TypeError, failedName, []any{err.Error()}
		var de *dbus.Error
		if errors.As(err, &de) {
			out.ErrorName, out.Body = de.Name, de.Body
		} else if e, ok := err.(dbus.Error); ok {
			out.ErrorName, out.Body = e.Name, e.Body
		}
	}
	if err := r.send(&out); err != nil {
		var enc encodeError
		if !errors.As(err, &enc) {
			r.log.Debug("writing D-Bus reply", "err", err)
			return
		}
		r.log.Warn("cannot encode D-Bus reply", "member", m.Headers[dbus.FieldMember].Value(), "err", err)
		out.Type, out.ErrorName, out.Body = TypeError, failedName, []any{"Internal error: reply cannot be encoded"}
		r.send(&out)
	}
}

const failedName = "org.freedesktop.DBus.Error.Failed"

// callHandler runs the handler; a panic becomes Failed, as in godbus.
func (r *relay) callHandler(m *dbus.Message) (body []any, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("panic answering D-Bus call", "panic", p, "stack", string(debug.Stack()))
			body, err = nil, dbus.NewError(failedName, []any{"Internal error"})
		}
	}()
	return r.calls.ServeCall(m)
}

// outBufs recycles encoding buffers: a ListMachines reply of 500 machines is
// 60 KiB, worth not allocating and clearing for every call.
// The occasional huge reply's buffer is not kept.
var outBufs = bufpool.New(4096, 1<<20)

// encodeError is a message that could not be encoded, as opposed to one that
// could not be written.
type encodeError struct{ error }

func (e encodeError) Unwrap() error { return e.error }

// send encodes m, with our encoder when it can and godbus's otherwise
// (messages carrying unix fds), and writes it to the bus. The fds in its body
// go with it and are closed.
func (r *relay) send(m *outMessage) error {
	bp := outBufs.Get()
	b, err := appendMessage((*bp)[:0], m)
	kept := *bp
	if err == nil {
		kept = b // as grown by this message
	}
	defer outBufs.Put(bp, kept)
	var fds []int
	if errors.Is(err, errUnencodable) {
		b, fds, err = encodeWithGodbus(m)
	}
	if err != nil {
		return encodeError{err}
	}
	defer closeFDs(fds)
	return r.writeBus(b, fds)
}

// sendAll writes ms in order, encoded back to back so that they go out in as
// few writes as the buffer bound allows; a message our encoder does not handle
// goes through send on its own, after those before it.
func (r *relay) sendAll(ms []outMessage) error {
	bp := outBufs.Get()
	b := (*bp)[:0]
	var first error
	flush := func() {
		if len(b) > 0 {
			first = cmp.Or(first, r.writeBus(b, nil))
			b = b[:0]
		}
	}
	for i := range ms {
		nb, err := appendMessage(b, &ms[i])
		switch {
		case err == nil:
			b = nb
			if len(b) >= maxBatchWrite {
				flush()
			}
		case errors.Is(err, errUnencodable):
			flush()
			first = cmp.Or(first, r.send(&ms[i]))
		default:
			first = cmp.Or(first, error(encodeError{err}))
		}
	}
	flush()
	outBufs.Put(bp, b)
	return first
}

// maxBatchWrite is where sendAll stops adding messages to one write.
const maxBatchWrite = 64 << 10

func encodeWithGodbus(m *outMessage) ([]byte, []int, error) {
	msg := &dbus.Message{Type: dbus.Type(m.Type), Flags: dbus.Flags(m.Flags), Headers: map[dbus.HeaderField]dbus.Variant{}, Body: m.Body}
	if m.Type == TypeSignal {
		msg.Headers[dbus.FieldPath] = dbus.MakeVariant(m.Path)
		msg.Headers[dbus.FieldInterface] = dbus.MakeVariant(m.Interface)
		msg.Headers[dbus.FieldMember] = dbus.MakeVariant(m.Member)
	} else {
		msg.Headers[dbus.FieldReplySerial] = dbus.MakeVariant(m.ReplySerial)
	}
	if m.Destination != "" {
		msg.Headers[dbus.FieldDestination] = dbus.MakeVariant(m.Destination)
	}
	if m.Type == TypeError {
		msg.Headers[dbus.FieldErrorName] = dbus.MakeVariant(m.ErrorName)
	}
	if len(m.Body) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(m.Body...))
	}
	var buf bytes.Buffer
	fds, err := msg.EncodeToWithFDs(&buf, binary.LittleEndian)
	if err != nil {
		return nil, nil, err
	}
	if len(fds) > 0 {
		msg.Headers[dbus.FieldUnixFDs] = dbus.MakeVariant(uint32(len(fds)))
		buf.Reset()
		if fds, err = msg.EncodeToWithFDs(&buf, binary.LittleEndian); err != nil {
			return nil, nil, err
		}
	}
	b := buf.Bytes()
	// godbus has no way to set a serial but its connection's own.
	binary.LittleEndian.PutUint32(b[8:12], m.Serial)
	return b, fds, nil
}
