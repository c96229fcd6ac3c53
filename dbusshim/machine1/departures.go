package machine1

import (
	"context"
	"sync"
	"time"
)

// departures ends the operations a bus client started (copies) when it leaves
// the bus, as upstream's operations end with their caller. The credential
// cache's NameOwnerChanged watch reports the departures.
type departures struct {
	mu      sync.Mutex
	waiting map[string]map[*departure]struct{}
}

type departure struct{ cancel context.CancelFunc }

// nameHasOwnerTimeout bounds the check that the caller is still there.
const nameHasOwnerTimeout = 10 * time.Second

// untilGone is ctx ended also when sender leaves the bus. A sender that left
// before the watch began is caught by asking the bus whether it is still there.
func (s *Server) untilGone(ctx context.Context, sender string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	d := &departure{cancel: cancel}
	s.departed.mu.Lock()
	if s.departed.waiting == nil {
		s.departed.waiting = map[string]map[*departure]struct{}{}
	}
	if s.departed.waiting[sender] == nil {
		s.departed.waiting[sender] = map[*departure]struct{}{}
	}
	s.departed.waiting[sender][d] = struct{}{}
	s.departed.mu.Unlock()
	stop := func() {
		s.departed.mu.Lock()
		delete(s.departed.waiting[sender], d)
		if len(s.departed.waiting[sender]) == 0 {
			delete(s.departed.waiting, sender)
		}
		s.departed.mu.Unlock()
		cancel()
	}
	if conn := s.cred.connection(); conn != nil {
		qctx, qcancel := context.WithTimeout(ctx, nameHasOwnerTimeout)
		var there bool
		err := conn.BusObject().CallWithContext(qctx, "org.freedesktop.DBus.NameHasOwner", 0, sender).Store(&there)
		qcancel()
		if err == nil && !there {
			cancel()
		}
	}
	return ctx, stop
}

// gone ends every operation of name.
func (d *departures) gone(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for w := range d.waiting[name] {
		w.cancel()
	}
	delete(d.waiting, name)
}
