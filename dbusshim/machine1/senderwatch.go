package machine1

import (
	"context"
	"sync"
	"time"
)

// senderWatch ends the context of long calls (image clones, removals, pool
// cleaning) when their sender leaves the bus: nobody waits for the answer any
// more, and the core stops the operation, as upstream kills its worker when the
// caller's message is freed.
type senderWatch struct {
	mu     sync.Mutex
	byName map[string]map[*context.CancelFunc]struct{}
}

func newSenderWatch() *senderWatch {
	return &senderWatch{byName: map[string]map[*context.CancelFunc]struct{}{}}
}

// gone cancels every call of name.
func (w *senderWatch) gone(name string) {
	w.mu.Lock()
	calls := w.byName[name]
	delete(w.byName, name)
	w.mu.Unlock()
	for cancel := range calls {
		(*cancel)()
	}
}

// hasOwnerTimeout bounds the check that the sender is still on the bus.
const hasOwnerTimeout = 10 * time.Second

// untilSenderGone returns the call's context, ended also when its sender leaves
// the bus, and the function that releases it. A sender already gone when the
// watch starts (its NameOwnerChanged came before) is found by asking the bus.
func (c *call) untilSenderGone() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(c.ctx)
	w := c.s.senders
	w.mu.Lock()
	calls := w.byName[c.sender]
	if calls == nil {
		calls = map[*context.CancelFunc]struct{}{}
		w.byName[c.sender] = calls
	}
	calls[&cancel] = struct{}{}
	w.mu.Unlock()
	release := func() {
		cancel()
		w.mu.Lock()
		if calls := w.byName[c.sender]; calls != nil {
			delete(calls, &cancel)
			if len(calls) == 0 {
				delete(w.byName, c.sender)
			}
		}
		w.mu.Unlock()
	}
	if conn := c.s.conn.Load(); conn != nil {
		qctx, qcancel := context.WithTimeout(ctx, hasOwnerTimeout)
		var has bool
		err := conn.BusObject().CallWithContext(qctx, "org.freedesktop.DBus.NameHasOwner", 0, c.sender).Store(&has)
		qcancel()
		if err == nil && !has {
			cancel()
		}
	}
	return ctx, release
}
