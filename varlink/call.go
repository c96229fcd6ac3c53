package varlink

import (
	"context"
	"encoding/json"
	"os"

	vl "github.com/varlink/go/varlink"
)

// Call is one method call being answered. Handlers read Member and
// Parameters, reply once (or, for a call that wants more, set Continues before
// every reply but the last) and return nil; an error they return closes the
// connection.
type Call struct {
	Method     string           // "interface.Member", as the client sent it
	Member     string           // the method's name within its interface
	Parameters *json.RawMessage // nil when absent; valid only during the call
	Continues  bool             // set before a reply that more replies follow

	params       json.RawMessage // what Parameters points to
	more, oneway bool
	conn         *Conn
	fds          []*os.File
	hangup       *hangupWatch // started by Done
}

// WantsMore reports whether the client accepts several replies.
func (c *Call) WantsMore() bool { return c.more }

// IsOneway reports whether the client wants no reply; the reply methods then
// send nothing.
func (c *Call) IsOneway() bool { return c.oneway }

// TakeFDs hands the fds that came with the call to the handler, which then
// owns them; fds nobody takes are closed when the call ends.
func (c *Call) TakeFDs() []*os.File {
	fds := c.fds
	c.fds = nil
	return fds
}

// Flush sends the stream replies buffered so far now. Replies with Continues
// are coalesced until a buffer fills; a stream whose replies come as things
// happen (a subscription) flushes after each batch so that none waits for the
// next. It first waits, without a time limit, until the socket has room: a
// client that does not read then holds its handler here, where the handler
// costs nothing but the socket's buffer, rather than in a write that would end
// the connection after the write timeout. A handler keeps what it buffers
// between Flushes small (Buffered) so that the write itself does not block.
// The wait ends with ctx (the server cancels it on shutdown).
func (c *Call) Flush(ctx context.Context) error {
	if err := c.conn.waitWritable(ctx); err != nil {
		return err
	}
	return c.conn.Flush()
}

// Buffered is how many bytes of stream replies wait for the next Flush.
func (c *Call) Buffered() int { return c.conn.buffered() }

// Done is closed when the peer hangs up. A handler that waits for events selects
// on it so that a departed subscriber ends its call at once, not at its next
// write. Watching starts with the first call of Done and ends with the call.
func (c *Call) Done() <-chan struct{} {
	if c.hangup == nil {
		c.hangup = c.conn.watchHangup()
	}
	return c.hangup.done
}

// end releases what the call still holds once the handler returned.
func (c *Call) end() {
	closeFiles(c.fds)
	if c.hangup != nil {
		c.conn.stopHangupWatch(c.hangup)
	}
}

// reply is a reply's frame, in the field order sd-varlink and varlink/go send.
type reply struct {
	Parameters any    `json:"parameters"`
	Continues  bool   `json:"continues,omitempty"`
	Error      string `json:"error,omitempty"`
}

// Reply sends params (a struct or map; nil is sent as {}).
func (c *Call) Reply(ctx context.Context, params any) error {
	return c.send(ctx, reply{Parameters: orEmpty(params), Continues: c.Continues}, nil)
}

// ReplyWithFDs sends params with fds attached; the caller keeps owning fds.
func (c *Call) ReplyWithFDs(ctx context.Context, params any, fds []*os.File) error {
	return c.send(ctx, reply{Parameters: orEmpty(params), Continues: c.Continues}, fds)
}

// ReplyError sends the error name with params, including the
// org.varlink.service names; errors always carry "parameters", as sd-varlink's
// do.
func (c *Call) ReplyError(ctx context.Context, name string, params any) error {
	return c.send(ctx, reply{Parameters: orEmpty(params), Error: name}, nil)
}

// ReplyMethodNotFound answers a call of a method the interface does not have.
// The payloads of org.varlink.service's errors are varlink/go's types, the
// reference implementation's spelling of the standard interface.
func (c *Call) ReplyMethodNotFound(ctx context.Context) error {
	return c.ReplyError(ctx, NameMethodNotFound, vl.MethodNotFound{Method: c.Method})
}

// ReplyInvalidParameter answers a call whose parameter name is unknown,
// missing, repeated or of the wrong type or value.
func (c *Call) ReplyInvalidParameter(ctx context.Context, name string) error {
	return c.ReplyError(ctx, NameInvalidParameter, vl.InvalidParameter{Parameter: name})
}

func (c *Call) send(ctx context.Context, r reply, fds []*os.File) error {
	if c.oneway {
		return nil
	}
	if p, ok := r.Parameters.(ObjectAppender); ok && len(fds) == 0 {
		bp := replyBufs.Get()
		b := append(appendReply(*bp, r, p), 0)
		_, err := c.conn.Write(ctx, b) // copies b
		replyBufs.Put(bp, b)
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b = append(b, 0)
	if len(fds) > 0 {
		_, err = c.conn.WriteWithFDs(ctx, b, fds)
		return err
	}
	_, err = c.conn.Write(ctx, b)
	return err
}

// emptyObject is the parameters of a reply that has none: it encodes itself,
// so that the most common answer of all, a userdb NoRecordFound, goes out
// without encoding/json.
var emptyObject = emptyParams{}

type emptyParams struct{}

func (emptyParams) AppendJSON(b []byte) []byte { return append(b, '{', '}') }

func orEmpty(params any) any {
	if params == nil {
		return emptyObject
	}
	return params
}
