package varlink

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"
)

// A stream reply that Call.Flush sends reaches the peer at once, before the
// handler ends; without it, it would wait for the coalescing buffer to fill.
func TestCallFlushSendsStreamReplyNow(t *testing.T) {
	a, b := socketpair(t)
	conn := newConn(b, DefaultLimits(), Peer{})
	c := &Call{more: true, conn: conn, Continues: true}
	if err := c.Reply(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, err := a.Read(buf)
	if err != nil || !bytes.HasSuffix(buf[:n], streamSuffix) {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
}

// Done closes when the peer hangs up, though nothing reads the socket.
func TestCallDoneOnHangup(t *testing.T) {
	a, b := socketpair(t)
	conn := newConn(b, Limits{IdleTimeout: time.Millisecond}, Peer{})
	c := &Call{conn: conn}
	done := c.Done()
	a.Close()
	<-done // hangs (and the test times out) if the hangup goes unnoticed
	c.end()
}

// Data from a peer that is still there is no hangup: Done stays open, the data
// stays for ReadMessage, and ending the call stops the watch. The watch also
// lifts the idle deadline, which must not end it early.
func TestCallDoneKeepsDataAndStops(t *testing.T) {
	a, b := socketpair(t)
	conn := newConn(b, Limits{IdleTimeout: time.Millisecond, MaxMessageSize: 1 << 20, MaxFDsPerMessage: 1, MaxPendingFDs: 1}, Peer{})
	conn.armDeadline()
	c := &Call{conn: conn}
	done := c.Done()
	time.Sleep(20 * time.Millisecond) // past the idle deadline the watch lifted
	if _, err := a.Write([]byte("next\x00")); err != nil {
		t.Fatal(err)
	}
	<-c.hangup.exited
	select {
	case <-done:
		t.Fatal("data taken for a hangup")
	default:
	}
	c.end()
	msg, _, err := conn.ReadMessage(context.Background())
	if err != nil || string(msg) != "next" {
		t.Fatalf("ReadMessage after the watch: %q %v", msg, err)
	}
	// A call that ends while the peer is silent stops its watch too.
	c2 := &Call{conn: conn}
	d2 := c2.Done()
	c2.end()
	select {
	case <-d2:
		t.Fatal("stopping the watch reported a hangup")
	default:
	}
	a.Close()
	if _, _, err := conn.ReadMessage(context.Background()); err != io.EOF {
		t.Fatalf("after hangup: %v", err)
	}
}

// A stream flush waits for a client that stopped reading for as long as it
// takes, rather than time out its write and drop the connection (and with it
// the error reply a subscriber that fell behind is owed); ctx ends the wait.
func TestCallFlushWaitsForRoom(t *testing.T) {
	a, b := socketpair(t)
	conn := newConn(b, Limits{WriteTimeout: 20 * time.Millisecond}, Peer{})
	// Fill the socket: the peer reads nothing yet.
	b.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	chunk := make([]byte, 64<<10)
	filled := 0
	for {
		n, err := b.Write(chunk)
		filled += n
		if err != nil {
			break
		}
	}
	b.SetWriteDeadline(time.Time{})
	c := &Call{more: true, conn: conn, Continues: true}
	if err := c.Reply(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Flush(ctx); err == nil {
		t.Fatal("Flush with an ended ctx succeeded on a full socket")
	}
	if err := c.Reply(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	flushed := make(chan error, 1)
	go func() { flushed <- c.Flush(context.Background()) }()
	time.Sleep(100 * time.Millisecond) // well past the write timeout
	go io.Copy(io.Discard, a)
	if err := <-flushed; err != nil {
		t.Fatalf("Flush gave up on a slow reader: %v", err)
	}
}
