package varlink

import (
	"context"
	"net"
	"testing"
	"time"
)

// Shutdown wakes every idle connection of a listener, whichever of them ended
// before (their links are gone from the group) and whichever are still open.
func TestShutdownEndsIdleAcceptedConnections(t *testing.T) {
	path, s := startEchoServer(t)
	var clients []net.Conn
	for range 5 {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("{\"method\":\"x.Y\"}\x00")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(make([]byte, 64)); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	// The first, a middle and the last one to join leave on their own.
	for _, i := range []int{0, 2, 4} {
		clients[i].Close()
	}
	waitFor(t, func() bool { n, _ := s.Stats(); return n == 2 }, "the closed connections are gone")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, i := range []int{1, 3} {
		clients[i].SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := clients[i].Read(make([]byte, 1)); err == nil {
			t.Errorf("client %d: read %d bytes after Shutdown, want the connection closed", i, n)
		}
	}
}

// A group shut before a connection joins refuses it, so that a connection
// accepted while the listener's context ends is not left waiting.
func TestConnGroupShutRefusesLateJoiners(t *testing.T) {
	var g connGroup
	g.shut()
	if g.add(&Conn{}) {
		t.Error("a shut group took a connection")
	}
}
