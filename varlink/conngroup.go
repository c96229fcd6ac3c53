package varlink

import "sync"

// connGroup holds the connections accepted on one listener, so that the end
// of its context shuts their read sides: what a context.AfterFunc per
// connection did, at the price of two allocations and a registration in the
// context's own set for every one-call connection.
type connGroup struct {
	mu     sync.Mutex
	head   *Conn
	closed bool
}

// add links c in; false when the group has already been shut, and c with it.
func (g *connGroup) add(c *Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	c.next = g.head
	if g.head != nil {
		g.head.prev = c
	}
	g.head = c
	return true
}

func (g *connGroup) remove(c *Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c.prev != nil {
		c.prev.next = c.next
	} else if g.head == c {
		g.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.prev, c.next = nil, nil
}

// shut wakes every reader of the group and those that join it later. The
// read side only: a handler in flight may still write its reply.
func (g *connGroup) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	for c := g.head; c != nil; c = c.next {
		c.uc.CloseRead()
	}
}
