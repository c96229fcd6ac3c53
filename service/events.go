package service

import "sync"

// EventKind says what happened to a machine.
type EventKind int

const (
	MachineNew     EventKind = iota // registered, or restored at start-up
	MachineRemoved                  // finalized: unregistered, or its leader died
)

// Event is one change of the registry, delivered in the order it happened.
type Event struct {
	Kind EventKind
	Name string
}

type subscriber struct {
	ch   chan Event
	once sync.Once
}

func (s *subscriber) close() { s.once.Do(func() { close(s.ch) }) }

// Subscribe returns a channel of registry events. A subscriber that falls more than
// buf events behind is dropped (its channel is closed) rather than stalling the
// registry; it can resubscribe and List to resynchronize.
func (m *Manager) Subscribe(buf int) (<-chan Event, func()) {
	s := &subscriber{ch: make(chan Event, buf)}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		s.close()
		return s.ch, func() {}
	}
	m.subs[s] = struct{}{}
	m.mu.Unlock()
	return s.ch, func() {
		m.mu.Lock()
		delete(m.subs, s)
		m.mu.Unlock()
		s.close()
	}
}

// emitLocked delivers an event. m.mu must be held, which keeps events in order.
func (m *Manager) emitLocked(kind EventKind, name string) {
	for s := range m.subs {
		select {
		case s.ch <- Event{Kind: kind, Name: name}:
		default:
			m.log.Warn("dropping slow event subscriber")
			delete(m.subs, s)
			s.close()
		}
	}
}
