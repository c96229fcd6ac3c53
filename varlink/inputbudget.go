package varlink

import (
	"errors"
	"os"
	"sync"
)

// ErrInputBudget: a connection's partial message would need more buffer than
// its user may still hold. That connection is the one hogging, so it is the
// one refused; nobody waits for budget.
var ErrInputBudget = errors.New("buffered input over budget")

// inputBudget bounds the bytes a server holds for messages that have not
// arrived whole, across its connections. A message that fits the pooled read
// buffer costs nothing here; a buffer growing past it reserves its full size
// first. Each unprivileged user may hold a share (a quarter of the budget,
// and never less than one maximal message, so one legitimate 16 MiB message
// always fits), and unprivileged users together leave one maximal message for
// root and the daemon's own user.
type inputBudget struct {
	total, share, unprivCap int

	mu     sync.Mutex
	used   int
	unpriv int
	perUID map[uint32]int
}

// largestBuffer is the biggest read buffer one connection can need: a maximal
// message, its NUL and what a read brings of the next one, in whole pages.
func largestBuffer(maxMessage int) int {
	page := os.Getpagesize()
	return (maxMessage + readChunk + page - 1) / page * page
}

// MinPendingInput is the least MaxPendingInput that leaves room for one
// maximal message of an unprivileged user and one of root.
func (l Limits) MinPendingInput() int { return 2 * largestBuffer(l.MaxMessageSize) }

func newInputBudget(lim Limits) *inputBudget {
	if lim.MaxPendingInput <= 0 {
		return nil
	}
	big := largestBuffer(lim.MaxMessageSize)
	return &inputBudget{
		total:     lim.MaxPendingInput,
		share:     max(lim.MaxPendingInput/4, big),
		unprivCap: lim.MaxPendingInput - big,
		perUID:    map[uint32]int{},
	}
}

// reserve takes n bytes for uid, or reports that it may not.
func (b *inputBudget) reserve(uid uint32, privileged bool, n int) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.total {
		return ErrInputBudget
	}
	if !privileged {
		if b.unpriv+n > b.unprivCap || b.perUID[uid]+n > b.share {
			return ErrInputBudget
		}
		b.unpriv += n
		b.perUID[uid] += n
	}
	b.used += n
	return nil
}

// give returns n bytes reserved for uid.
func (b *inputBudget) give(uid uint32, privileged bool, n int) {
	if b == nil || n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if !privileged {
		b.unpriv -= n
		if b.perUID[uid] -= n; b.perUID[uid] <= 0 {
			delete(b.perUID, uid)
		}
	}
}

// inUse reports the bytes reserved now, for tests and the stats line.
func (b *inputBudget) inUse() int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
