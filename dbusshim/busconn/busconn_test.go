package busconn

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/internal/bustest"
)

// server is a guarded connection exporting a few methods that receive fds.
type server struct {
	conn *dbus.Conn
	got  chan []any // what each call received
}

const (
	testPath  = dbus.ObjectPath("/test")
	testIface = "org.example.Guard"
)

// serverModes are the two ways a connection answers calls: through godbus's
// handler, or through a CallHandler served by the relay itself.
var serverModes = []string{"godbus", "calls"}

func startServer(t *testing.T, addr, mode string, accept func(Header) bool) *server {
	t.Helper()
	s := &server{got: make(chan []any, 16)}
	cfg := Config{AcceptFDs: accept}
	var opts []dbus.ConnOption
	if mode == "calls" {
		cfg.Calls = callRecorder{s.got}
	} else {
		opts = append(opts, dbus.WithHandler(recorder{s.got}))
	}
	conn, err := Dial(addr, cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s.conn = conn.Conn
	return s
}

// recorder answers every method call with an empty reply after recording its
// body (Ping is not recorded) and closing the fds in it.
type recorder struct{ got chan []any }

func (r recorder) LookupObject(dbus.ObjectPath) (dbus.ServerObject, bool) { return r, true }
func (r recorder) LookupInterface(string) (dbus.Interface, bool)          { return r, true }
func (r recorder) LookupMethod(name string) (dbus.Method, bool)           { return recMethod{r, name}, true }

type recMethod struct {
	r    recorder
	name string
}

func (m recMethod) DecodeArguments(_ *dbus.Conn, _ string, _ *dbus.Message, body []any) ([]any, error) {
	return []any{body}, nil
}
func (m recMethod) Call(args ...any) ([]any, error) {
	body := args[0].([]any)
	if m.name != "Ping" {
		m.r.got <- body
	}
	closeBodyFDs(body)
	return nil, nil
}
func (recMethod) NumArguments() int     { return 1 }
func (recMethod) NumReturns() int       { return 0 }
func (recMethod) ArgumentValue(int) any { return nil }
func (recMethod) ReturnValue(int) any   { return nil }

// callRecorder is recorder as a CallHandler.
type callRecorder struct{ got chan []any }

func (r callRecorder) ServeCall(msg *dbus.Message) ([]any, error) {
	if msg.Headers[dbus.FieldMember].Value() != "Ping" {
		r.got <- msg.Body
	}
	closeBodyFDs(msg.Body)
	return nil, nil
}

func closeBodyFDs(body []any) {
	for _, v := range body {
		if fd, ok := v.(dbus.UnixFD); ok {
			closeFDs([]int{int(fd)})
		}
	}
}

// rawCall sends a method call with a hand-made signature and body from an
// ordinary godbus client (sending is safe; only godbus's reader is at risk).
func rawCall(t *testing.T, client *dbus.Conn, dest, member string, body ...any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return client.Object(dest, testPath).CallWithContext(ctx, testIface+"."+member, 0, body...).Err
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func pipeFD(t *testing.T) (dbus.UnixFD, func()) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	return dbus.UnixFD(r.Fd()), func() { r.Close(); w.Close() }
}

// The messages that panic an unguarded godbus v5.2.4 reader reach the handler
// as indices, the server survives, and no received fd stays open.
func TestFDArraysDoNotReachGodbus(t *testing.T) {
	for _, mode := range serverModes {
		t.Run(mode, func(t *testing.T) { testFDArrays(t, mode) })
	}
}

func testFDArrays(t *testing.T, mode string) {
	bus := bustest.Start(t, "")
	srv := startServer(t, bus.Address, mode, func(h Header) bool { return h.Type == TypeMethodCall })
	client, err := dbus.Connect(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	dest := srv.conn.Names()[0]

	before := openFDs(t)
	for i := 0; i < 50; i++ {
		fd, done := pipeFD(t)
		cases := []struct {
			member string
			body   []any
		}{
			{"Many", []any{[]dbus.UnixFD{fd, fd}}},                                             // ah
			{"Many", []any{map[string]dbus.UnixFD{"a": fd}}},                                   // a{sh}
			{"Many", []any{map[string]dbus.Variant{"x": dbus.MakeVariant([]dbus.UnixFD{fd})}}}, // ah in a{sv}
			{"Many", []any{[]struct {
				Name  string
				Value dbus.Variant
			}{{"PIDFDs", dbus.MakeVariant([]dbus.UnixFD{fd})}}}}, // systemd's property array
		}
		for _, c := range cases {
			if err := rawCall(t, client, dest, c.member, c.body...); err != nil {
				t.Fatalf("%s %T: %v", c.member, c.body[0], err)
			}
			got := <-srv.got
			if hasRealFD(got) {
				t.Fatalf("fd array reached the handler with real fds: %#v", got)
			}
		}
		done()
	}
	if err := rawCall(t, client, dest, "Ping"); err != nil {
		t.Fatalf("server gone after the fd arrays: %v", err)
	}
	// Every fd the server received was closed by the relay.
	if after := openFDs(t); after > before+2 {
		t.Errorf("fds: %d before, %d after", before, after)
	}
}

func hasRealFD(vs []any) bool {
	var walk func(v any) bool
	walk = func(v any) bool {
		switch v := v.(type) {
		case dbus.UnixFD:
			return true
		case []dbus.UnixFD:
			return true
		case map[string]dbus.UnixFD:
			return true
		case dbus.Variant:
			return walk(v.Value())
		case map[string]dbus.Variant:
			for _, x := range v {
				if walk(x) {
					return true
				}
			}
		case []any:
			for _, x := range v {
				if walk(x) {
					return true
				}
			}
		case [][]any:
			for _, x := range v {
				if walk(x) {
					return true
				}
			}
		}
		return false
	}
	for _, v := range vs {
		if walk(v) {
			return true
		}
	}
	return false
}

// A single fd, where the policy accepts it, arrives as a live fd; where it
// does not, the handler sees an index and the fd is closed by the relay.
func TestSingleFDPolicy(t *testing.T) {
	for _, mode := range serverModes {
		t.Run(mode, func(t *testing.T) { testSingleFDPolicy(t, mode) })
	}
}

func testSingleFDPolicy(t *testing.T, mode string) {
	bus := bustest.Start(t, "")
	srv := startServer(t, bus.Address, mode, func(h Header) bool {
		return h.Type == TypeMethodCall && h.Member == "One" && h.Interface == testIface
	})
	client, err := dbus.Connect(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	dest := srv.conn.Names()[0]

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if err := rawCall(t, client, dest, "One", dbus.UnixFD(w.Fd())); err != nil {
		t.Fatal(err)
	}
	got := <-srv.got
	if _, ok := got[0].(dbus.UnixFD); !ok {
		t.Fatalf("accepted fd arrived as %T", got[0])
	}
	// The handler closed its copy; ours still works.
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}

	before := openFDs(t)
	for i := 0; i < 20; i++ {
		// "Many" is refused by the policy, even with a plain "h".
		if err := rawCall(t, client, dest, "Many", dbus.UnixFD(w.Fd()), "tail"); err != nil {
			t.Fatal(err)
		}
		got := <-srv.got
		if _, ok := got[0].(dbus.UnixFDIndex); !ok || got[1] != "tail" {
			t.Fatalf("refused fd arrived as %#v", got)
		}
	}
	if after := openFDs(t); after > before+2 {
		t.Errorf("fds: %d before, %d after", before, after)
	}
}

// Large messages and bursts pass the framing intact, both ways.
func TestRelayFraming(t *testing.T) {
	bus := bustest.Start(t, "")
	conn, err := Dial(bus.Address, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echo := func(s string) (string, *dbus.Error) { return s, nil }
	if err := conn.ExportMethodTable(map[string]any{"Echo": echo}, testPath, testIface); err != nil {
		t.Fatal(err)
	}
	client, err := Dial(bus.Address, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	big := strings.Repeat("0123456789abcdef", 1<<14) // 256 KiB
	calls := make([]*dbus.Call, 0, 32)
	for i := 0; i < 32; i++ {
		arg := big[:1+i*8191]
		calls = append(calls, client.Object(conn.Names()[0], testPath).Go(testIface+".Echo", 0, nil, arg))
	}
	for i, c := range calls {
		<-c.Done
		var s string
		if err := c.Store(&s); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if s != big[:1+i*8191] {
			t.Fatalf("call %d: echo of %d bytes came back as %d bytes", i, 1+i*8191, len(s))
		}
	}
}

func TestParseHeader(t *testing.T) {
	m := &dbus.Message{Type: dbus.TypeMethodCall, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:        dbus.MakeVariant(dbus.ObjectPath("/org/freedesktop/machine1")),
		dbus.FieldInterface:   dbus.MakeVariant("org.freedesktop.machine1.Manager"),
		dbus.FieldMember:      dbus.MakeVariant("RegisterMachineEx"),
		dbus.FieldSignature:   dbus.MakeVariant(dbus.ParseSignatureMust("sa(sv)")),
		dbus.FieldUnixFDs:     dbus.MakeVariant(uint32(1)),
		dbus.FieldDestination: dbus.MakeVariant("org.freedesktop.machine1"),
	}, Body: []any{"x", []struct {
		N string
		V dbus.Variant
	}{{"LeaderPID", dbus.MakeVariant(uint32(7))}}}}
	for _, order := range []string{"l", "B"} {
		var buf bytes.Buffer
		var err error
		if order == "l" {
			err = m.EncodeTo(&buf, binary.LittleEndian)
		} else {
			err = m.EncodeTo(&buf, binary.BigEndian)
		}
		if err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()
		n, err := messageLen(b)
		if err != nil || n != len(b) {
			t.Fatalf("%s: messageLen %d %v, want %d", order, n, err, len(b))
		}
		if n, _ := messageLen(b[:15]); n != 0 {
			t.Errorf("short header: %d", n)
		}
		h, err := parseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		want := Header{Type: TypeMethodCall, Path: "/org/freedesktop/machine1", Interface: "org.freedesktop.machine1.Manager",
			Member: "RegisterMachineEx", Signature: "sa(sv)", UnixFDs: 1}
		if h != want {
			t.Errorf("%s: %+v, want %+v", order, h, want)
		}
	}
}

func TestFDArraySig(t *testing.T) {
	for sig, want := range map[string]bool{
		"ah": true, "a{sh}": true, "a{hs}": true, "sa(sv)": false, "h": false, "a(h)": false, "aah": true, "sash": false,
	} {
		if got := fdArraySig(sig); got != want {
			t.Errorf("fdArraySig(%q) = %v", sig, got)
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	var buf bytes.Buffer
	m := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:      dbus.MakeVariant(dbus.ObjectPath("/a")),
		dbus.FieldInterface: dbus.MakeVariant("a.b"),
		dbus.FieldMember:    dbus.MakeVariant("C"),
	}}
	m.EncodeTo(&buf, binary.LittleEndian)
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := messageLen(b)
		if err != nil || n == 0 || n > len(b) {
			return
		}
		parseHeader(b[:n])
	})
}
