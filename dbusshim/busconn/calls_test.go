package busconn

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/bustest"
)

// funcHandler is a CallHandler from a function.
type funcHandler func(*dbus.Message) ([]any, error)

func (f funcHandler) ServeCall(m *dbus.Message) ([]any, error) { return f(m) }

func member(m *dbus.Message) string { s, _ := m.Headers[dbus.FieldMember].Value().(string); return s }

// callsPair is a connection answering with h and a plain godbus client.
func callsPair(t *testing.T, h CallHandler) (server *Conn, client *dbus.Conn) {
	t.Helper()
	bus := bustest.Start(t, "")
	server, err := Dial(bus.Address, Config{Calls: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	client, err = dbus.Connect(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return server, client
}

func callCtx(t *testing.T, c *dbus.Conn, dest, method string, args ...any) *dbus.Call {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.Object(dest, testPath).CallWithContext(ctx, testIface+"."+method, 0, args...)
}

// Replies of every size reach the caller whole, pipelined or not, and the
// relay's replies interleave with godbus's own traffic on the same socket.
func TestCallsReplies(t *testing.T) {
	var server *Conn
	var ready sync.WaitGroup
	ready.Add(1)
	h := funcHandler(func(m *dbus.Message) ([]any, error) {
		switch member(m) {
		case "Echo":
			return m.Body, nil
		case "Owner":
			// A call of our own from inside a call: its reply comes through
			// the relay while this call waits.
			ready.Wait()
			var owner string
			err := server.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, server.Names()[0]).Store(&owner)
			return []any{owner}, err
		case "List":
			type entry struct {
				Name, Class string
				Path        dbus.ObjectPath
			}
			out := make([]entry, 2000)
			for i := range out {
				out[i] = entry{"m" + strings.Repeat("x", i%50), "container", "/org/freedesktop/machine1/machine/m"}
			}
			return []any{out, uint32(len(out))}, nil
		}
		return nil, dbus.MakeUnknownMethodError(member(m))
	})
	server, client := callsPair(t, h)
	ready.Done()
	dest := server.Names()[0]

	big := strings.Repeat("0123456789abcdef", 1<<14)
	calls := make([]*dbus.Call, 0, 64)
	for i := 0; i < 32; i++ {
		calls = append(calls, client.Object(dest, testPath).Go(testIface+".Echo", 0, nil, big[:1+i*8191], uint64(i)))
		calls = append(calls, client.Object(dest, testPath).Go(testIface+".Owner", 0, nil))
	}
	for i, c := range calls {
		<-c.Done
		if i%2 == 1 {
			var owner string
			if err := c.Store(&owner); err != nil || owner != dest {
				t.Fatalf("Owner: %q, %v; want %q", owner, err, dest)
			}
			continue
		}
		var s string
		var n uint64
		if err := c.Store(&s, &n); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if s != big[:1+i/2*8191] || n != uint64(i/2) {
			t.Fatalf("call %d: echo of %d bytes came back as %d bytes, %d", i, 1+i/2*8191, len(s), n)
		}
	}
	var list [][]any
	var count uint32
	if err := callCtx(t, client, dest, "List").Store(&list, &count); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2000 || count != 2000 || list[1999][0] != "m"+strings.Repeat("x", 1999%50) || list[7][2] != dbus.ObjectPath("/org/freedesktop/machine1/machine/m") {
		t.Fatalf("List: %d entries, count %d, last %v", len(list), count, list[len(list)-1])
	}
}

// Errors reach the caller by name, whatever the handler returned, and a
// handler that panics costs its call only.
func TestCallsErrors(t *testing.T) {
	h := funcHandler(func(m *dbus.Message) ([]any, error) {
		switch member(m) {
		case "Named":
			return nil, dbus.NewError("org.example.Error.Named", []any{"with a message", uint32(7)})
		case "NamedValue":
			return nil, dbus.Error{Name: "org.example.Error.Value", Body: []any{"by value"}}
		case "Plain":
			return nil, errors.New("plain failure")
		case "Panic":
			panic("handler bug")
		case "Unencodable":
			return []any{"bad \xff utf-8"}, nil
		}
		return nil, nil
	})
	server, client := callsPair(t, h)
	dest := server.Names()[0]
	cases := []struct{ member, name, msg string }{
		{"Named", "org.example.Error.Named", "with a message"},
		{"NamedValue", "org.example.Error.Value", "by value"},
		{"Plain", failedName, "plain failure"},
		{"Panic", failedName, "Internal error"},
		{"Unencodable", failedName, "Internal error: reply cannot be encoded"},
	}
	for _, c := range cases {
		err := callCtx(t, client, dest, c.member).Err
		var de dbus.Error
		if !errors.As(err, &de) || de.Name != c.name || len(de.Body) == 0 || de.Body[0] != c.msg {
			t.Errorf("%s: got %#v, want %s %q", c.member, err, c.name, c.msg)
		}
	}
	if err := callCtx(t, client, dest, "Fine").Err; err != nil {
		t.Fatalf("after the errors: %v", err)
	}
}

// A reply carrying an fd goes out with it (through godbus's encoder), and the
// relay closes its copy once sent.
func TestCallsReplyWithFD(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	wfd := w.Fd() // read here: the race detector cannot see the socket ordering Close after the calls
	h := funcHandler(func(m *dbus.Message) ([]any, error) {
		fd, err := unix.FcntlInt(wfd, unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		return []any{dbus.UnixFD(fd), "pipe"}, nil
	})
	server, client := callsPair(t, h)
	before := openFDs(t)
	for i := 0; i < 10; i++ {
		var fd dbus.UnixFD
		var what string
		if err := callCtx(t, client, server.Names()[0], "Open").Store(&fd, &what); err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(fd), "received")
		if _, err := f.Write([]byte{'x'}); err != nil || what != "pipe" {
			t.Fatalf("received fd: %v, %q", err, what)
		}
		f.Close()
		buf := make([]byte, 1)
		if _, err := r.Read(buf); err != nil || buf[0] != 'x' {
			t.Fatalf("pipe read: %v", err)
		}
	}
	if after := openFDs(t); after > before+2 {
		t.Errorf("fds: %d before, %d after ten replies with an fd", before, after)
	}
}

// Emit's signals reach a subscriber with their path, name and body, in order.
func TestEmit(t *testing.T) {
	server, client := callsPair(t, funcHandler(func(*dbus.Message) ([]any, error) { return nil, nil }))
	if err := client.AddMatchSignal(dbus.WithMatchSender(server.Names()[0])); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan *dbus.Signal, 16)
	client.Signal(sigs)
	for i := uint32(0); i < 5; i++ {
		if err := server.Emit("/org/example/obj", "org.example.Iface.Changed", "name", i, dbus.ObjectPath("/org/example/obj/x")); err != nil {
			t.Fatal(err)
		}
	}
	for i := uint32(0); i < 5; i++ {
		select {
		case s := <-sigs:
			if s.Path != "/org/example/obj" || s.Name != "org.example.Iface.Changed" || len(s.Body) != 3 || s.Body[1] != i || s.Body[2] != dbus.ObjectPath("/org/example/obj/x") {
				t.Fatalf("signal %d: %+v", i, s)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("signal %d not received", i)
		}
	}
	for _, bad := range []string{"nodot", ".Member", "org.example.", ""} {
		if err := server.Emit("/org/example/obj", bad); err == nil {
			t.Errorf("Emit %q: no error", bad)
		}
	}
	if err := server.Emit("not/a/path", "org.example.Iface.Changed"); err == nil {
		t.Error("Emit from an invalid path: no error")
	}
}

// Past MaxCalls in progress a call is refused at once with LimitsExceeded,
// with or without a reply expected, and the connection serves on once the
// calls in progress end.
func TestCallsLimit(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	running, most := 0, 0
	entered := make(chan struct{}, 100)
	h := funcHandler(func(m *dbus.Message) ([]any, error) {
		if member(m) != "Block" {
			return nil, nil
		}
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		entered <- struct{}{}
		<-release
		mu.Lock()
		running--
		mu.Unlock()
		return nil, nil
	})
	bus := bustest.Start(t, "")
	server, err := Dial(bus.Address, Config{Calls: h, MaxCalls: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	client, err := dbus.Connect(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	obj := client.Object(server.Names()[0], testPath)
	blocked := []*dbus.Call{obj.Go(testIface+".Block", 0, nil), obj.Go(testIface+".Block", 0, nil)}
	<-entered
	<-entered
	for i := 0; i < 50; i++ {
		obj.Go(testIface+".Block", dbus.FlagNoReplyExpected, nil)
	}
	err = callCtx(t, client, server.Names()[0], "Other").Err
	var de dbus.Error
	if !errors.As(err, &de) || de.Name != limitsExceededName {
		t.Fatalf("third call: %v, want %s", err, limitsExceededName)
	}
	close(release)
	for _, c := range blocked {
		if err := (<-c.Done).Err; err != nil {
			t.Fatal(err)
		}
	}
	if err := callCtx(t, client, server.Names()[0], "Other").Err; err != nil {
		t.Fatalf("after the blocked calls ended: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if most > 2 {
		t.Errorf("%d calls ran at once, limit 2", most)
	}
}

// Calls that come one after the other are served on one reused goroutine, not
// each on a fresh one whose stack grows by copying on every registration.
func TestCallsReuseGoroutines(t *testing.T) {
	ids := map[string]bool{}
	var mu sync.Mutex
	h := funcHandler(func(m *dbus.Message) ([]any, error) {
		buf := make([]byte, 64)
		buf = buf[:runtime.Stack(buf, false)]
		id, _, _ := strings.Cut(strings.TrimPrefix(string(buf), "goroutine "), " ")
		mu.Lock()
		ids[id] = true
		mu.Unlock()
		return nil, nil
	})
	server, client := callsPair(t, h)
	for range 20 {
		if err := callCtx(t, client, server.Names()[0], "Ping").Err; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// A call may arrive before the previous one's goroutine is back on the
	// idle list; most must find it there. A fresh goroutine each is 20.
	if len(ids) > 10 {
		t.Errorf("20 calls in a row ran on %d goroutines", len(ids))
	}
}
