package bufpool

import "testing"

func TestGrownBufferComesBackUnlessTooBig(t *testing.T) {
	p := New(8, 64)
	bp := p.Get()
	if len(*bp) != 0 || cap(*bp) < 8 {
		t.Fatalf("fresh buffer len %d cap %d; want empty with room for 8", len(*bp), cap(*bp))
	}
	b := append((*bp)[:0], "0123456789abcdef"...)
	p.Put(bp, b)
	if len(*bp) != 0 || cap(*bp) != cap(b) {
		t.Fatalf("after Put the holder has len %d cap %d; want empty with the grown cap %d", len(*bp), cap(*bp), cap(b))
	}

	// A buffer grown past max is dropped, its holder left as it was.
	big := p.Get()
	before := *big
	grown := append((*big)[:0], make([]byte, 100)...)
	p.Put(big, grown)
	if cap(*big) != cap(before) {
		t.Fatalf("oversized buffer stored in its holder: cap %d", cap(*big))
	}
}
