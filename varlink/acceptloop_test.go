package varlink

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/dialas"
)

// ready is a closed channel: the accept loop answers from the start.
func readyNow() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

// whereServed is an echo handler that notes, per message, whether the accept
// loop answered it (no net.Conn yet) or a worker did.
type whereServed struct {
	mu     sync.Mutex
	onLoop map[string]bool
}

func (w *whereServed) handle(ctx context.Context, c *Conn, msg []byte, fds []*os.File) error {
	w.mu.Lock()
	if w.onLoop == nil {
		w.onLoop = map[string]bool{}
	}
	w.onLoop[string(msg)] = c.NetConn() == nil
	w.mu.Unlock()
	return echo(ctx, c, msg, fds)
}

func (w *whereServed) loop(msg string) (onLoop, seen bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	onLoop, seen = w.onLoop[msg]
	return onLoop, seen
}

func dial(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// oneShot makes one call on a connection of its own and hangs up.
func oneShot(t *testing.T, path, msg string) (string, error) {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return roundTrip(t, c, msg)
}

// readN reads n NUL-terminated replies.
func readN(c net.Conn, n int) ([]string, error) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var buf []byte
	b := make([]byte, 4096)
	for strings.Count(string(buf), "\x00") < n {
		k, err := c.Read(b)
		buf = append(buf, b[:k]...)
		if err != nil {
			return nil, err
		}
	}
	return strings.SplitN(string(buf), "\x00", n+1)[:n], nil
}

func connsGone(s *Server) func() bool {
	return func() bool { n, _ := s.Stats(); return n == 0 }
}

// A connection that sends one call and hangs up, as nss-systemd's do, is
// answered by the accept loop itself, and its place is given back.
func TestAcceptLoopAnswersOneCallConnections(t *testing.T) {
	var w whereServed
	path, s := serveOnWith(t, DefaultLimits(), w.handle, readyNow())
	for i := range 20 {
		msg := fmt.Sprintf("call-%d", i)
		c := dial(t, path)
		if r, err := roundTrip(t, c, msg); err != nil || !strings.Contains(r, msg) {
			t.Fatalf("%s: %q %v", msg, r, err)
		}
		c.Close()
		if onLoop, _ := w.loop(msg); !onLoop {
			t.Errorf("%s was answered by a worker", msg)
		}
	}
	waitFor(t, connsGone(s), "every connection to be released")
}

// Until ready is closed the handler may wait, so every call goes to a worker.
func TestAcceptLoopWaitsForReady(t *testing.T) {
	var w whereServed
	ready := make(chan struct{})
	path, _ := serveOnWith(t, DefaultLimits(), w.handle, ready)
	if r, err := roundTrip(t, dial(t, path), "early"); err != nil || !strings.Contains(r, "early") {
		t.Fatalf("%q %v", r, err)
	}
	close(ready)
	if r, err := roundTrip(t, dial(t, path), "late"); err != nil || !strings.Contains(r, "late") {
		t.Fatalf("%q %v", r, err)
	}
	if onLoop, _ := w.loop("early"); onLoop {
		t.Error("a call before ready was answered by the accept loop")
	}
	if onLoop, _ := w.loop("late"); !onLoop {
		t.Error("a call after ready was answered by a worker")
	}
}

// A client that keeps its connection is answered by the loop call after
// call, and so are a few calls pipelined in one write, in order.
func TestAcceptLoopAnswersLaterCalls(t *testing.T) {
	var w whereServed
	path, s := serveOnWith(t, DefaultLimits(), w.handle, readyNow())

	c := dial(t, path)
	for _, msg := range []string{"p1", "p2", "p3"} {
		if r, err := roundTrip(t, c, msg); err != nil || !strings.Contains(r, `"`+msg+`"`) {
			t.Fatalf("%s: %q %v", msg, r, err)
		}
	}
	c.Write([]byte("q1\x00q2\x00q3\x00"))
	replies, err := readN(c, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"q1", "q2", "q3"} {
		if !strings.Contains(replies[i], `"`+want+`"`) {
			t.Fatalf("pipelined: reply %d is %q, want %s", i, replies[i], want)
		}
	}
	for _, msg := range []string{"p1", "p2", "p3", "q1", "q2", "q3"} {
		if onLoop, seen := w.loop(msg); !seen || !onLoop {
			t.Errorf("%s: answered on the loop %v (seen %v), want true", msg, onLoop, seen)
		}
	}
	c.Close()
	waitFor(t, connsGone(s), "every connection to be released")
}

// A call that may have to wait goes to a worker, whether it is a
// connection's first call or a later one, and so does the rest of its
// connection: one that may have many replies ("more", also spelled with an
// escape), an upgrade, one with fds, one that came in parts, and calls
// pipelined beyond what the loop answers in a turn.
func TestAcceptLoopHandsOverWhatMayWait(t *testing.T) {
	var w whereServed
	path, s := serveOnWith(t, DefaultLimits(), w.handle, readyNow())
	send := func(c net.Conn, msg string) {
		if _, err := c.Write([]byte(msg + "\x00")); err != nil {
			t.Fatal(err)
		}
	}
	withFDs := func(c net.Conn, msg string) {
		f, err := os.Open("/dev/null")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, _, err := c.(*net.UnixConn).WriteMsgUnix([]byte(msg+"\x00"), unix.UnixRights(int(f.Fd())), nil); err != nil {
			t.Fatal(err)
		}
	}
	// inParts sends msg in two writes; the loop serves connections one after
	// the other, so once another connection is answered it has read the
	// first part.
	inParts := func(c net.Conn, msg string) {
		c.Write([]byte(msg[:3]))
		if r, err := oneShot(t, path, "other"); err != nil || !strings.Contains(r, "other") {
			t.Fatalf("%q %v", r, err)
		}
		send(c, msg[3:])
	}
	for _, tc := range []struct {
		name string
		msg  string
		how  func(net.Conn, string)
	}{
		{"more", `{"method":"a.B","more":true}`, send},
		{"more escaped", `{"method":"a.B","mor\u0065":true}`, send},
		{"upgrade", `{"method":"a.B","upgrade":true}`, send},
		{"fds", `{"method":"a.B","fds":1}`, withFDs},
		{"in parts", `{"method":"a.B","parts":2}`, inParts},
	} {
		for _, first := range []bool{true, false} {
			name := fmt.Sprintf("%s (first call %v)", tc.name, first)
			c := dial(t, path)
			if !first {
				if r, err := roundTrip(t, c, "before "+name); err != nil || !strings.Contains(r, "before") {
					t.Fatalf("%s: %q %v", name, r, err)
				}
			}
			msg := strings.Replace(tc.msg, `"a.B"`, fmt.Sprintf("%q", name), 1)
			tc.how(c, msg)
			if r, err := readOne(c); err != nil || !strings.Contains(r, "echo") {
				t.Fatalf("%s: %q %v", name, r, err)
			}
			if r, err := roundTrip(t, c, "after "+name); err != nil || !strings.Contains(r, "after") {
				t.Fatalf("%s: %q %v", name, r, err)
			}
			if onLoop, seen := w.loop(msg); !seen || onLoop {
				t.Errorf("%s: answered on the loop %v (seen %v), want by a worker", name, onLoop, seen)
			}
			if onLoop, _ := w.loop("after " + name); onLoop {
				t.Errorf("%s: the call after it was answered on the loop", name)
			}
			c.Close()
		}
	}

	c := dial(t, path)
	var batch []byte
	n := 3 * callsPerTurn
	for i := range n {
		batch = append(batch, fmt.Sprintf("batch-%02d\x00", i)...)
	}
	c.Write(batch) // one write: the loop reads it whole
	replies, err := readN(c, n)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range replies {
		msg := fmt.Sprintf("batch-%02d", i)
		if !strings.Contains(r, `"`+msg+`"`) {
			t.Fatalf("reply %d is %q, want %s", i, r, msg)
		}
		if onLoop, _ := w.loop(msg); onLoop != (i < callsPerTurn) {
			t.Errorf("%s answered on the loop: %v", msg, onLoop)
		}
	}
	c.Close()
	waitFor(t, connsGone(s), "every connection to be released")
}

// A reply the socket cannot take whole is neither waited for on the loop (it
// answers others meanwhile) nor cut: its tail goes to a worker, which sends
// it before anything else, once the client reads.
func TestAcceptLoopReplyLargerThanTheSocket(t *testing.T) {
	size := 4 << 20 // beyond any socket buffer the sysctls allow by default
	var w whereServed
	h := func(ctx context.Context, c *Conn, msg []byte, fds []*os.File) error {
		w.mu.Lock()
		if w.onLoop == nil {
			w.onLoop = map[string]bool{}
		}
		w.onLoop[string(msg)] = c.NetConn() == nil
		w.mu.Unlock()
		reply := append([]byte(`{"parameters":{"call":"`+string(msg)+`","pad":"`), strings.Repeat(string(msg[len(msg)-1]), size)...)
		return c.WriteRaw(ctx, append(reply, "\"}}\x00"...))
	}
	path, s := serveOnWith(t, DefaultLimits(), h, readyNow())
	c := dial(t, path)
	c.Write([]byte("big-1\x00big-2\x00big-3\x00"))
	// Whatever order the loop took the two in, the second of these comes
	// after it met the full socket: it was not stuck there.
	for _, msg := range []string{"other-1", "other-2"} {
		if r, err := oneShot(t, path, msg); err != nil || !strings.Contains(r, msg) {
			t.Fatalf("%s, while a reply waits for room: %q %v", msg, r, err)
		}
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReaderSize(c, 64<<10)
	for i := 1; i <= 3; i++ {
		msg := fmt.Sprintf("big-%d", i)
		reply, err := r.ReadString(0)
		if err != nil {
			t.Fatalf("reply %d: %v after %d bytes", i, err, len(reply))
		}
		want := `{"parameters":{"call":"` + msg + `","pad":"` + strings.Repeat(fmt.Sprint(i), size) + "\"}}\x00"
		if reply != want {
			t.Fatalf("reply %d: %d bytes, not the %d sent", i, len(reply), len(want))
		}
	}
	if onLoop, _ := w.loop("big-1"); !onLoop {
		t.Error("the first call was not answered on the loop")
	}
	if onLoop, _ := w.loop("big-2"); onLoop {
		t.Error("a call after a reply the socket could not take was answered on the loop")
	}
	c.Close()
	waitFor(t, connsGone(s), "every connection to be released")
}

// A client that pipelines 10,000 calls and reads nothing until it has sent
// them all gets every reply, in order.
func TestAcceptLoopManyPipelinedCalls(t *testing.T) {
	path, s := serveOnWith(t, DefaultLimits(), echo, readyNow())
	c := dial(t, path)
	const n = 10000
	var calls []byte
	for i := range n {
		calls = append(calls, fmt.Sprintf("c%05d\x00", i)...)
	}
	c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(calls); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	for i := range n {
		reply, err := r.ReadString(0)
		if want := fmt.Sprintf(`{"parameters":{"echo":"c%05d"}}`+"\x00", i); reply != want || err != nil {
			t.Fatalf("reply %d: %q %v, want %q", i, reply, err, want)
		}
	}
	c.Close()
	waitFor(t, connsGone(s), "every connection to be released")
}

// Clients that flood the loop with calls do not keep it from answering the
// others: another client's calls, on new connections and on a kept one, are
// answered while one flooder writes without pause and reads as fast, one
// writes and never reads (its replies fill its socket), and one makes one
// call after the other.
func TestAcceptLoopServesOthersDuringAFlood(t *testing.T) {
	var w whereServed
	path, s := serveOnWith(t, DefaultLimits(), w.handle, readyNow())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// 16-byte calls: every read of the server's ends between two of them,
	// never in the middle of one, which would send the flooder to a worker.
	flood := bytes.Repeat([]byte("flood-call-0123\x00"), 4)
	writeUntilStopped := func(c net.Conn) {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := c.Write(flood); err != nil {
				return
			}
		}
	}
	reading, deaf, steady := dial(t, path), dial(t, path), dial(t, path)
	var steadyCalls int
	wg.Add(4)
	go writeUntilStopped(reading)
	go func() {
		defer wg.Done()
		io.Copy(io.Discard, reading)
	}()
	go writeUntilStopped(deaf)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			msg := fmt.Sprintf("steady-%d", i)
			if r, err := roundTrip(t, steady, msg); err != nil || !strings.Contains(r, msg) {
				t.Errorf("%s: %q %v", msg, r, err)
				return
			}
			steadyCalls = i + 1
		}
	}()
	kept := dial(t, path)
	for i := range 50 {
		msg := fmt.Sprintf("other-%d", i)
		if r, err := oneShot(t, path, msg); err != nil || !strings.Contains(r, msg) {
			t.Fatalf("%s: %q %v", msg, r, err)
		}
		msg = fmt.Sprintf("kept-%d", i)
		if r, err := roundTrip(t, kept, msg); err != nil || !strings.Contains(r, msg) {
			t.Fatalf("%s: %q %v", msg, r, err)
		}
	}
	close(stop)
	reading.(*net.UnixConn).CloseWrite() // the server hangs up, which ends the reader
	deaf.Close()                         // a write blocked on the full socket fails
	wg.Wait()
	if steadyCalls > 1 {
		if onLoop, _ := w.loop(fmt.Sprintf("steady-%d", steadyCalls-1)); !onLoop {
			t.Error("the steady client's calls were not answered on the loop")
		}
	}
	for _, c := range []net.Conn{reading, steady, kept} {
		c.Close()
	}
	waitFor(t, connsGone(s), "every connection to be released")
}

// The idle timeout holds for the connections the loop keeps: one that never
// calls and one that stays after its answers.
func TestAcceptLoopIdleTimeout(t *testing.T) {
	lim := DefaultLimits()
	lim.IdleTimeout = 100 * time.Millisecond
	path, s := serveOnWith(t, lim, echo, readyNow())
	silent := dial(t, path)
	answered := dial(t, path)
	for _, msg := range []string{"x", "y"} {
		if r, err := roundTrip(t, answered, msg); err != nil || !strings.Contains(r, `"`+msg+`"`) {
			t.Fatalf("%q %v", r, err)
		}
	}
	for name, c := range map[string]net.Conn{"silent": silent, "answered": answered} {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("%s connection not closed (read %d bytes)", name, n)
		}
	}
	waitFor(t, connsGone(s), "the idle connections to be released")
}

// The per-uid cap counts the connections the loop holds.
func TestAcceptLoopPerUIDLimit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to connect as another user")
	}
	dir, err := os.MkdirTemp("/tmp", "vltest-") // reachable by nobody
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "s")
	l, err := Listen(path, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	lim := DefaultLimits()
	lim.MaxConnectionsPerUID = 2
	s := NewServer("test", echo, lim, nil)
	s.AnswerOnAcceptLoop(readyNow())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	var held []*net.UnixConn
	for range 2 {
		c, err := dialas.Unix(path, 65534, 65534)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	if r, err := roundTrip(t, held[0], "in"); err != nil || !strings.Contains(r, `"in"`) {
		t.Fatalf("%q %v", r, err)
	}
	over, err := dialas.Unix(path, 65534, 65534)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	if r, err := roundTrip(t, over, "over"); err == nil {
		t.Errorf("third connection of uid 65534 answered: %q", r)
	}
	if _, perUID := s.Stats(); perUID[65534] != 2 {
		t.Errorf("uid 65534 holds %d connections, want 2", perUID[65534])
	}
}

// The end of Serve closes the connections the loop holds, and gives back
// their places and fds.
func TestAcceptLoopShutdown(t *testing.T) {
	before := openFDs(t)
	path := filepath.Join(t.TempDir(), "s")
	l, err := Listen(path, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer("test", echo, DefaultLimits(), nil)
	s.AnswerOnAcceptLoop(readyNow())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	silent, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	answered, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer answered.Close()
	for _, msg := range []string{"x", "y"} {
		if r, err := roundTrip(t, answered, msg); err != nil || !strings.Contains(r, `"`+msg+`"`) {
			t.Fatalf("%q %v", r, err)
		}
	}
	waitFor(t, func() bool { n, _ := s.Stats(); return n == 2 }, "both connections to be counted")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	for name, c := range map[string]net.Conn{"silent": silent, "answered": answered} {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("%s connection still open after Serve ended", name)
		}
	}
	if n, _ := s.Stats(); n != 0 {
		t.Errorf("%d connections still counted", n)
	}
	silent.Close()
	answered.Close()
	// Earlier tests' servers may still be closing theirs: wait, do not compare once.
	waitFor(t, func() bool { return openFDs(t) <= before }, "fds back to where they were before the server")
}

// A first call that breaks the bounds gets the protocol error, a panicking
// handler costs its connection, and the fds sent with a first call reach the
// handler and are closed with it; the loop serves on.
func TestAcceptLoopAbuse(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxMessageSize = 64
	var got sync.Map
	path, s := serveOnWith(t, lim, func(ctx context.Context, c *Conn, msg []byte, fds []*os.File) error {
		got.Store(string(msg), len(fds))
		return echo(ctx, c, msg, fds)
	}, readyNow())
	if _, err := oneShot(t, path, "warm-up"); err != nil { // the loop's own fds are open
		t.Fatal(err)
	}
	before := openFDs(t)

	if r, err := oneShot(t, path, strings.Repeat("y", 100)); err != nil || !strings.Contains(r, "io.systemd.Protocol") {
		t.Errorf("oversized first call: %q %v", r, err)
	}
	later := dial(t, path)
	if r, err := roundTrip(t, later, "first"); err != nil || !strings.Contains(r, "first") {
		t.Fatalf("%q %v", r, err)
	}
	if r, err := roundTrip(t, later, strings.Repeat("z", 100)); err != nil || !strings.Contains(r, "io.systemd.Protocol") {
		t.Errorf("oversized later call: %q %v", r, err)
	}
	if r, err := roundTrip(t, later, strings.Repeat("z", 50)+strings.Repeat("w", 50)); err == nil {
		t.Errorf("connection open after an oversized call: %q", r)
	}
	later.Close()
	if _, err := oneShot(t, path, "panic"); err == nil {
		t.Error("the connection of a panicking handler stayed open")
	}
	c := dial(t, path).(*net.UnixConn)
	f, _ := os.Open("/dev/null")
	c.WriteMsgUnix([]byte("fds\x00"), unix.UnixRights(int(f.Fd()), int(f.Fd())), nil)
	f.Close()
	if r, err := readOne(c); err != nil || !strings.Contains(r, "fds") {
		t.Errorf("call with fds: %q %v", r, err)
	}
	if n, _ := got.Load("fds"); n != 2 {
		t.Errorf("handler got %v fds, want 2", n)
	}
	c.Close()
	if r, err := oneShot(t, path, "still"); err != nil || !strings.Contains(r, "still") {
		t.Errorf("loop unusable after abuse: %q %v", r, err)
	}
	waitFor(t, connsGone(s), "every connection to be released")
	waitFor(t, func() bool { return openFDs(t) <= before }, "fds back to the baseline")
}

// A deadline the loop sets for its held connections after Serve's end has
// begun must not hide that end: the parked loop still wakes.
func TestAcceptLoopDeadlineAfterTheEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	l, err := Listen(path, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := NewServer("test", echo, DefaultLimits(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newAcceptLoop(ctx, s, l)
	if err != nil || a == nil {
		t.Fatalf("newAcceptLoop: %v %v", a, err)
	}
	defer a.epf.Close()
	cancel()
	a.wake()
	a.setDeadline(time.Now().Add(time.Hour)) // as hold does for a new idle connection
	woke := make(chan error, 1)
	go func() { woke <- a.eprc.Read(a.pollFn) }()
	select {
	case <-woke:
	case <-time.After(10 * time.Second):
		a.epf.Close()
		t.Fatal("the loop stayed parked after the end of Serve")
	}
}
