package busconn

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// sendAll writes a burst of signals in one write, in order.
func TestSendAllOneWrite(t *testing.T) {
	r, peer := packetRelay(t)
	var ms []outMessage
	for i := uint32(1); i <= 20; i++ {
		ms = append(ms, testSignal(i, fmt.Sprintf("machine-%d", i), dbus.ObjectPath(fmt.Sprintf("/org/example/obj/m%d", i))))
	}
	if err := r.sendAll(ms); err != nil {
		t.Fatal(err)
	}
	if got, want := readPacket(t, peer), encoded(t, ms...); !bytes.Equal(got, want) {
		t.Fatalf("one write of %d bytes, want all %d signals in %d bytes", len(got), len(ms), len(want))
	}
}

// A burst larger than maxBatchWrite is split at message boundaries, each
// write at most one message past the bound.
func TestSendAllBound(t *testing.T) {
	r, peer := packetRelay(t)
	big := string(bytes.Repeat([]byte("x"), 4000))
	var ms []outMessage
	for i := uint32(1); i <= 40; i++ { // 160 KB
		ms = append(ms, testSignal(i, big))
	}
	done := make(chan error, 1)
	go func() { done <- r.sendAll(ms) }()
	var got []byte
	want := encoded(t, ms...)
	one := len(encoded(t, ms[0]))
	packets := 0
	for len(got) < len(want) {
		p := readPacket(t, peer)
		if len(p) >= maxBatchWrite+one || len(p)%one != 0 {
			t.Fatalf("packet %d: %d bytes, messages of %d, bound %d", packets, len(p), one, maxBatchWrite)
		}
		got = append(got, p...)
		packets++
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || packets < 2 {
		t.Fatalf("%d packets, %d bytes; want the %d signals in order in at least two", packets, len(got), len(ms))
	}
}

// A message our encoder leaves to godbus (here one carrying an fd) goes out on
// its own, after the messages before it and before those after it.
func TestSendAllKeepsOrderAroundGodbusEncoded(t *testing.T) {
	r, peer := packetRelay(t)
	p, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	defer w.Close()
	ms := []outMessage{testSignal(1, "a"), testSignal(2, "b"), testSignal(3, dbus.UnixFD(p.Fd())), testSignal(4, "d")}
	if err := r.sendAll(ms); err != nil {
		t.Fatal(err)
	}
	if got, want := readPacket(t, peer), encoded(t, ms[0], ms[1]); !bytes.Equal(got, want) {
		t.Fatalf("first write %q, want signals 1 and 2", got)
	}
	if m, err := dbus.DecodeMessage(bytes.NewReader(readPacket(t, peer))); err != nil || m.Serial() != 3 {
		t.Fatalf("second write: %v, %v; want signal 3", m, err)
	}
	if got, want := readPacket(t, peer), encoded(t, ms[3]); !bytes.Equal(got, want) {
		t.Fatalf("third write %q, want signal 4", got)
	}
}

// EmitAll's signals reach a subscriber in order, as Emit's do; one with a bad
// name is refused without holding back the others.
func TestEmitAll(t *testing.T) {
	server, client := callsPair(t, funcHandler(func(*dbus.Message) ([]any, error) { return nil, nil }))
	if err := client.AddMatchSignal(dbus.WithMatchSender(server.Names()[0])); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan *dbus.Signal, 64)
	client.Signal(sigs)
	var batch []Signal
	for i := uint32(0); i < 50; i++ {
		name := "org.example.Iface.Changed"
		if i == 10 {
			name = "nodot"
		}
		batch = append(batch, Signal{Path: "/org/example/obj", Name: name, Body: []any{"name", i}})
	}
	if err := server.EmitAll(batch); err == nil {
		t.Fatal("EmitAll with a bad signal name: no error")
	}
	for i := uint32(0); i < 50; i++ {
		if i == 10 {
			continue
		}
		select {
		case s := <-sigs:
			if s.Path != "/org/example/obj" || s.Name != "org.example.Iface.Changed" || len(s.Body) != 2 || s.Body[1] != i {
				t.Fatalf("signal %d: %+v", i, s)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("signal %d not received", i)
		}
	}
}
