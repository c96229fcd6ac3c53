package varlink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func socketpair(t testing.TB) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "sp")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	a, b := mk(fds[0]), mk(fds[1])
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestReadMessageFraming(t *testing.T) {
	a, b := socketpair(t)
	c := newConn(b, DefaultLimits(), Peer{PIDFD: -1})
	// Pipelined in one write, then one split over many writes.
	go func() {
		a.Write([]byte("one\x00two\x00three\x00"))
		for _, part := range []string{"fo", "u", "r\x00"} {
			a.Write([]byte(part))
			time.Sleep(time.Millisecond)
		}
	}()
	for _, want := range []string{"one", "two", "three", "four"} {
		msg, fds, err := c.ReadMessage(context.Background())
		if err != nil || string(msg) != want || len(fds) != 0 {
			t.Fatalf("got %q %v %v, want %q", msg, fds, err, want)
		}
	}
}

func TestReadMessageFDs(t *testing.T) {
	a, b := socketpair(t)
	c := newConn(b, DefaultLimits(), Peer{PIDFD: -1})
	f, _ := os.Open("/dev/null")
	defer f.Close()
	a.WriteMsgUnix([]byte("first\x00sec"), unix.UnixRights(int(f.Fd()), int(f.Fd())), nil)
	a.Write([]byte("ond\x00"))
	msg, fds, err := c.ReadMessage(context.Background())
	if err != nil || string(msg) != "first" || len(fds) != 0 {
		t.Fatalf("first: %q %d %v", msg, len(fds), err)
	}
	// The fds came with the recvmsg whose last byte belongs to "second".
	msg, fds, err = c.ReadMessage(context.Background())
	if err != nil || string(msg) != "second" || len(fds) != 2 {
		t.Fatalf("second: %q %d %v", msg, len(fds), err)
	}
	for _, f := range fds {
		f.Close()
	}
}

func TestReadMessageLimits(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxMessageSize = 1 << 20
	a, b := socketpair(t)
	c := newConn(b, lim, Peer{PIDFD: -1})
	go func() {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for i := 0; i < 32; i++ {
			if _, err := a.Write(chunk); err != nil {
				return
			}
		}
	}()
	if _, _, err := c.ReadMessage(context.Background()); !errors.Is(err, ErrMessageTooLarge) {
		t.Errorf("oversize: %v", err)
	}
	if len(c.buf) > 2*lim.MaxMessageSize {
		t.Errorf("buffered %d bytes for a %d cap", len(c.buf), lim.MaxMessageSize)
	}

	a2, b2 := socketpair(t)
	c2 := newConn(b2, DefaultLimits(), Peer{PIDFD: -1})
	f, _ := os.Open("/dev/null")
	defer f.Close()
	base := openFDs(t)
	many := make([]int, 40)
	for i := range many {
		many[i] = int(f.Fd())
	}
	a2.WriteMsgUnix([]byte("{"), unix.UnixRights(many...), nil)
	if _, _, err := c2.ReadMessage(context.Background()); !errors.Is(err, ErrTooManyFDs) {
		t.Errorf("fd flood: %v", err)
	}
	if n := openFDs(t); n > base {
		t.Errorf("fds leaked: %d -> %d", base, n)
	}
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestStreamWritesCoalesce(t *testing.T) {
	a, b := socketpair(t)
	c := newConn(b, DefaultLimits(), Peer{PIDFD: -1})
	part := []byte(`{"parameters":{"name":"m"},"continues":true}` + "\x00")
	last := []byte(`{"parameters":{"name":"z"}}` + "\x00")
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(a); done <- b }()
	for i := 0; i < 10000; i++ {
		c.Write(context.Background(), part)
	}
	c.Write(context.Background(), last)
	b.Close()
	got := <-done
	if want := 10000*len(part) + len(last); len(got) != want || !bytes.HasSuffix(got, last) {
		t.Errorf("received %d bytes, want %d", len(got), want)
	}
}

// serveOn runs a Server on a temp socket.
func serveOn(t *testing.T, lim Limits, h Handler) (string, *Server) {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "vltest-") // reachable by other users, unlike t.TempDir
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
	s := NewServer("test", h, lim, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go s.Serve(ctx, l)
	t.Cleanup(func() {
		cancel()
		sctx, c2 := context.WithTimeout(context.Background(), 5*time.Second)
		defer c2()
		s.Shutdown(sctx)
	})
	return path, s
}

func echo(ctx context.Context, c *Conn, msg []byte, fds []*os.File) error {
	for _, f := range fds {
		f.Close()
	}
	if string(msg) == "panic" {
		panic("handler bug")
	}
	return c.WriteRaw(ctx, append(append([]byte(`{"parameters":{"echo":`), fmt.Sprintf("%q", msg)...), "}}\x00"...))
}

func roundTrip(t *testing.T, c net.Conn, msg string) (string, error) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg + "\x00")); err != nil {
		return "", err
	}
	var buf []byte
	b := make([]byte, 512)
	for {
		n, err := c.Read(b)
		buf = append(buf, b[:n]...)
		if i := bytes.IndexByte(buf, 0); i >= 0 {
			return string(buf[:i]), nil
		}
		if err != nil {
			return "", err
		}
	}
}

func TestServerPanicAndProtocolErrors(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxMessageSize = 64 << 10
	path, _ := serveOn(t, lim, echo)
	c1, _ := net.Dial("unix", path)
	defer c1.Close()
	if _, err := roundTrip(t, c1, "panic"); err == nil {
		t.Error("panicking handler's connection stayed open")
	}
	c2, _ := net.Dial("unix", path)
	defer c2.Close()
	if r, err := roundTrip(t, c2, strings.Repeat("y", 100<<10)); err != nil || !strings.Contains(r, "io.systemd.Protocol") {
		t.Errorf("oversize reply %q %v", r, err)
	}
	c3, _ := net.Dial("unix", path)
	defer c3.Close()
	if r, err := roundTrip(t, c3, "hello"); err != nil || !strings.Contains(r, "hello") {
		t.Errorf("server unusable after abuse: %q %v", r, err)
	}
}

func TestIdleTimeout(t *testing.T) {
	lim := DefaultLimits()
	lim.IdleTimeout = 100 * time.Millisecond
	path, s := serveOn(t, lim, echo)
	c, _ := net.Dial("unix", path)
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("idle connection not closed")
	}
	deadline := time.Now().Add(5 * time.Second)
	for n, _ := s.Stats(); n != 0 && time.Now().Before(deadline); n, _ = s.Stats() {
		time.Sleep(10 * time.Millisecond)
	}
	if n, _ := s.Stats(); n != 0 {
		t.Errorf("%d connections still counted", n)
	}
}

func TestActivationFilesUnsetsEnv(t *testing.T) {
	t.Setenv("LISTEN_PID", "1")
	t.Setenv("LISTEN_FDS", "1")
	if got := ActivationFiles(); got != nil {
		t.Errorf("fds for another pid: %v", got)
	}
	if os.Getenv("LISTEN_FDS") != "" {
		t.Error("LISTEN_FDS not unset")
	}
}

func TestNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	if err := Notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, _ := pc.ReadFromUnix(buf)
	if string(buf[:n]) != "READY=1" {
		t.Errorf("got %q", buf[:n])
	}
}

// Child modes of the test binary, selected by VLT_CHILD.
func TestMain(m *testing.M) {
	switch os.Getenv("VLT_CHILD") {
	case "peruid":
		childPerUID(os.Getenv("VLT_SOCK"), 4)
		os.Exit(0)
	case "activation":
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
		for _, a := range ActivationFiles() {
			fmt.Printf("%s %v\n", a.Name, a.Listening)
		}
		fmt.Printf("env %q %q %q\n", os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES"))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childPerUID connects n times, holds every connection and prints how many
// were closed by the server (EOF) within a second.
func childPerUID(path string, n int) {
	var eof atomic.Int32
	var wg sync.WaitGroup
	var conns []net.Conn
	for i := 0; i < n; i++ {
		c, err := net.Dial("unix", path)
		if err != nil {
			fmt.Println("dial:", err)
			os.Exit(1)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := c.Read(make([]byte, 1)); errors.Is(err, io.EOF) {
				eof.Add(1)
			}
		}()
	}
	wg.Wait()
	fmt.Println(eof.Load())
}

func TestPerUIDLimit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to connect as another user")
	}
	lim := DefaultLimits()
	lim.MaxConnectionsPerUID = 2
	path, s := serveOn(t, lim, echo)
	// Root is exempt: more than two root connections are fine.
	for i := 0; i < 3; i++ {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if r, err := roundTrip(t, c, "root"); err != nil || !strings.Contains(r, "root") {
			t.Fatalf("root connection %d: %q %v", i, r, err)
		}
	}
	// The go test build dir is private to root: run a copy the child user can reach.
	bin := filepath.Join(filepath.Dir(path), "child.test")
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, exe, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "VLT_CHILD=peruid", "VLT_SOCK="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	if strings.TrimSpace(string(out)) != "2" {
		t.Errorf("child saw %q connections closed, want 2 of 4", out)
	}
	if _, per := s.Stats(); per[65534] > 2 {
		t.Errorf("uid 65534 holds %d connections", per[65534])
	}
}

func TestActivationFilesChild(t *testing.T) {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "a"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lf, _ := l.File()
	defer lf.Close()
	a, _ := socketpair(t)
	af, _ := a.File()
	defer af.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "VLT_CHILD=activation", "LISTEN_FDS=2", "LISTEN_FDNAMES=varlink")
	cmd.ExtraFiles = []*os.File{lf, af}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	want := "varlink true\nunknown false\nenv \"\" \"\" \"\"\n"
	if string(out) != want {
		t.Errorf("child printed %q, want %q", out, want)
	}
}

func TestPipelinedAndSplitThroughServer(t *testing.T) {
	path, _ := serveOn(t, DefaultLimits(), echo)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var all []byte
	for i := 0; i < 100; i++ {
		all = append(all, fmt.Sprintf("m%d\x00", i)...)
	}
	c.Write(all)
	// One message split over many writes.
	go func() {
		for _, p := range []string{"sp", "l", "i", "t\x00"} {
			time.Sleep(2 * time.Millisecond)
			c.Write([]byte(p))
		}
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := readN(t, c, 101)
	for i := 0; i < 100; i++ {
		if !strings.Contains(r[i], fmt.Sprintf(`"m%d"`, i)) {
			t.Fatalf("reply %d: %q", i, r[i])
		}
	}
	if !strings.Contains(r[100], `"split"`) {
		t.Errorf("split reply %q", r[100])
	}
}

// readN reads n NUL-terminated messages from c.
func readN(t *testing.T, c net.Conn, n int) []string {
	t.Helper()
	var out []string
	var buf []byte
	b := make([]byte, 64<<10)
	for len(out) < n {
		k, err := c.Read(b)
		buf = append(buf, b[:k]...)
		for {
			i := bytes.IndexByte(buf, 0)
			if i < 0 {
				break
			}
			out = append(out, string(buf[:i]))
			buf = buf[i+1:]
		}
		if err != nil && len(out) < n {
			t.Fatalf("after %d messages: %v", len(out), err)
		}
	}
	return out
}

func TestFDsReachHandler(t *testing.T) {
	got := make(chan int, 1)
	path, _ := serveOn(t, DefaultLimits(), func(ctx context.Context, c *Conn, msg []byte, fds []*os.File) error {
		got <- len(fds)
		for _, f := range fds {
			var st unix.Stat_t
			if err := unix.Fstat(int(f.Fd()), &st); err != nil {
				t.Error(err)
			}
			f.Close()
		}
		return c.WriteRaw(ctx, []byte("{}\x00"))
	})
	uc, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	f, _ := os.Open("/dev/null")
	defer f.Close()
	if _, _, err := uc.WriteMsgUnix([]byte("{}\x00"), unix.UnixRights(int(f.Fd()), int(f.Fd()), int(f.Fd())), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-got:
		if n != 3 {
			t.Errorf("handler got %d fds, want 3", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler not called")
	}
}

func TestOversizeMessageBoundedHeap(t *testing.T) {
	path, _ := serveOn(t, DefaultLimits(), echo) // 16 MiB cap
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	writeErr := make(chan error, 1)
	go func() {
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		for i := 0; i < 17; i++ {
			if _, err := c.Write(chunk); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}()
	// A second client is served while the first one streams.
	c2, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if r, err := roundTrip(t, c2, "meanwhile"); err != nil || !strings.Contains(r, "meanwhile") {
		t.Errorf("second client: %q %v", r, err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	r, err := io.ReadAll(c)
	if !bytes.Equal(r, protocolError) {
		t.Errorf("got %q (%v), want the protocol error", r, err)
	}
	<-writeErr
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapInuse > 128<<20 {
		t.Errorf("heap in use %d MiB after a 17 MiB message", ms.HeapInuse>>20)
	}
}

func TestFDFloodRejected(t *testing.T) {
	path, s := serveOn(t, DefaultLimits(), echo)
	base := openFDs(t)
	uc, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open("/dev/null")
	ten := make([]int, 10)
	for i := range ten {
		ten[i] = int(f.Fd())
	}
	for i := 0; i < 20; i++ { // 200 fds, no message ever completes
		if _, _, err := uc.WriteMsgUnix([]byte("{"), unix.UnixRights(ten...), nil); err != nil {
			break
		}
	}
	uc.SetReadDeadline(time.Now().Add(10 * time.Second))
	r, _ := io.ReadAll(uc)
	if !bytes.Equal(r, protocolError) {
		t.Errorf("got %q, want the protocol error", r)
	}
	uc.Close()
	f.Close()
	deadline := time.Now().Add(5 * time.Second)
	for openFDs(t) > base+1 && time.Now().Before(deadline) { // +1: the reader of /proc/self/fd
		time.Sleep(10 * time.Millisecond)
	}
	if n := openFDs(t); n > base {
		t.Errorf("open fds %d, baseline %d", n, base)
	}
	if n, _ := s.Stats(); n != 0 {
		t.Errorf("%d connections still counted", n)
	}
}

func TestContinuesStreamThroughServer(t *testing.T) {
	const n = 10000
	path, _ := serveOn(t, DefaultLimits(), func(ctx context.Context, c *Conn, msg []byte, fds []*os.File) error {
		for i := 0; i < n; i++ {
			if _, err := c.Write(ctx, []byte(fmt.Sprintf(`{"parameters":{"i":%d},"continues":true}`+"\x00", i))); err != nil {
				return err
			}
		}
		_, err := c.Write(ctx, []byte(`{"parameters":{"i":-1}}`+"\x00"))
		return err
	})
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(`{"method":"a.b.C","more":true}` + "\x00"))
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	r := readN(t, c, n+1)
	for i := 0; i < n; i++ {
		if r[i] != fmt.Sprintf(`{"parameters":{"i":%d},"continues":true}`, i) {
			t.Fatalf("reply %d: %q", i, r[i])
		}
	}
	if r[n] != `{"parameters":{"i":-1}}` {
		t.Errorf("last reply %q", r[n])
	}
}

func TestServeConnSocketpair(t *testing.T) {
	a, b := socketpair(t)
	s := NewServer("pair", func(ctx context.Context, c *Conn, msg []byte, fds []*os.File) error {
		if p, ok := PeerFromContext(ctx); !ok || p.PID != os.Getpid() {
			t.Errorf("peer %+v %v", p, ok)
		}
		return echo(ctx, c, msg, fds)
	}, DefaultLimits(), nil)
	done := make(chan struct{})
	go func() { s.ServeConn(context.Background(), b); close(done) }()
	if r, err := roundTrip(t, a, "pair"); err != nil || !strings.Contains(r, "pair") {
		t.Errorf("%q %v", r, err)
	}
	a.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("ServeConn did not return after hang-up")
	}
}

func TestShutdownStopsServe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	l, err := Listen(path, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer("sd", echo, DefaultLimits(), nil)
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background(), l) }()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "x")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket not unlinked: %v", err)
	}
}

func TestVarlinkctlInterop(t *testing.T) {
	const ctl = "/usr/local/bin/varlinkctl"
	if _, err := os.Stat(ctl); err != nil {
		t.Skip("no varlinkctl")
	}
	path, _ := serveOn(t, DefaultLimits(), func(ctx context.Context, c *Conn, msg []byte, fds []*os.File) error {
		return c.WriteRaw(ctx, []byte(`{"parameters":{"ok":true}}`+"\x00"))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, ctl, "call", "unix:"+path, "foo.bar.Baz", "{}").CombinedOutput()
	if err != nil {
		t.Fatalf("varlinkctl: %v: %s", err, out)
	}
	if !strings.Contains(string(out), `"ok"`) || !strings.Contains(string(out), "true") {
		t.Errorf("varlinkctl printed %q", out)
	}
}
