package machine1

import (
	"time"

	"github.com/machined-go/machined/dbusshim/busconn"

	"github.com/machined-go/machined/service"
)

// eventBuffer is how far the forwarder may fall behind the registry before
// the core drops its subscription (it then resubscribes and resynchronizes).
const eventBuffer = 4096

// forwardEvents turns the core's registry events, from either transport, into
// MachineNew/MachineRemoved on the Manager object, in order. When the core
// drops the subscription because we fell behind, it resubscribes and emits
// what changed meanwhile, by comparing the registry with the names it knows.
func (s *Server) forwardEvents(conn *busconn.Conn, mgr *service.Manager, events <-chan service.Event, cancel func()) {
	known := map[string]bool{}
	for _, mi := range mgr.List() {
		known[mi.Name] = true
	}
	for {
		idle := true
		func() {
			defer cancel()
			for {
				select {
				case <-s.stop:
					return
				case <-conn.Context().Done():
					return
				case ev, ok := <-events:
					if !ok {
						return
					}
					idle = false
					switch ev.Kind {
					case service.MachineNew:
						known[ev.Name] = true
						s.emit(conn, "MachineNew", ev.Name)
					case service.MachineRemoved:
						delete(known, ev.Name)
						s.emit(conn, "MachineRemoved", ev.Name)
					}
				}
			}
		}()
		select {
		case <-s.stop:
			return
		case <-conn.Context().Done():
			return
		default:
		}
		s.log.Warn("D-Bus signal forwarder fell behind; resynchronizing")
		if idle {
			// A subscription that closes at once: the core is shutting down.
			select {
			case <-s.stop:
				return
			case <-conn.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		events, cancel = mgr.Subscribe(eventBuffer)
		now := map[string]bool{}
		for _, mi := range mgr.List() {
			now[mi.Name] = true
			if !known[mi.Name] {
				s.emit(conn, "MachineNew", mi.Name)
			}
		}
		for name := range known {
			if !now[name] {
				s.emit(conn, "MachineRemoved", name)
			}
		}
		known = now
	}
}

func (s *Server) emit(conn *busconn.Conn, member, name string) {
	if err := conn.Emit(managerPath, managerIface+"."+member, name, MachinePath(name)); err != nil {
		s.log.Debug("emit signal", "member", member, "machine", name, "err", err)
	}
}
