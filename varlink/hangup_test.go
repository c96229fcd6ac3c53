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
	if err := c.Flush(); err != nil {
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
