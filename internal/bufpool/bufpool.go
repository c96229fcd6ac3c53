package bufpool

import "sync"

// Pool hands out buffers of at least its initial size and takes them back
// grown, except those grown past max: one huge message must not keep its
// buffer alive in the pool.
type Pool struct {
	pool sync.Pool
	max  int
}

// New returns a pool of buffers starting at size bytes, kept up to max.
func New(size, max int) *Pool {
	return &Pool{pool: sync.Pool{New: func() any { b := make([]byte, 0, size); return &b }}, max: max}
}

// Get returns a buffer holder; append to (*bp)[:0].
func (p *Pool) Get() *[]byte { return p.pool.Get().(*[]byte) }

// Put returns bp, now holding b (what was appended to *bp), to the pool. b must
// no longer be used.
func (p *Pool) Put(bp *[]byte, b []byte) {
	if cap(b) > p.max {
		return
	}
	*bp = b[:0]
	p.pool.Put(bp)
}
