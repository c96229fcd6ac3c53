package busconn

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// packetRelay is a relay whose bus socket is a SOCK_SEQPACKET pair: every
// write arrives as one packet, so the test sees how the relay split its writes.
func packetRelay(t *testing.T) (*relay, *net.UnixConn) {
	t.Helper()
	bs, peer := busSocketPairOf(t, unix.SOCK_SEQPACKET)
	return &relay{bus: bs}, peer
}

func readPacket(t *testing.T, c *net.UnixConn) []byte {
	t.Helper()
	buf := make([]byte, 1<<20)
	oob := make([]byte, 256)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	if oobn > 0 {
		fds, err := rights(oob[:oobn])
		if err != nil {
			t.Fatal(err)
		}
		closeFDs(fds)
	}
	return buf[:n]
}

func testSignal(serial uint32, body ...any) outMessage {
	return outMessage{Type: TypeSignal, Serial: serial, Path: "/org/example/obj", Interface: "org.example.Iface", Member: "Changed", Body: body}
}

func encoded(t *testing.T, ms ...outMessage) []byte {
	t.Helper()
	var b []byte
	for i := range ms {
		var err error
		if b, err = appendMessage(b, &ms[i]); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// Writes to the bus allocate nothing: every signal and reply goes through
// here.
func TestWriteBusDoesNotAllocate(t *testing.T) {
	r, _ := packetRelay(t)
	msg := encoded(t, testSignal(1, "m"))
	allocs := testing.AllocsPerRun(50, func() {
		if err := r.writeBus(msg, nil); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per write, want 0", allocs)
	}
}
