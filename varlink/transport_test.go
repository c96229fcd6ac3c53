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
	"strings"
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
	c := newConn(b, DefaultLimits(), Peer{})
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
	c := newConn(b, DefaultLimits(), Peer{})
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
	c := newConn(b, lim, Peer{})
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
	c2 := newConn(b2, DefaultLimits(), Peer{})
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
	c := newConn(b, DefaultLimits(), Peer{})
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
	return serveOnWith(t, lim, h, nil)
}

// serveOnWith is serveOn with AnswerOnAcceptLoop(ready) when ready is not nil.
func serveOnWith(t *testing.T, lim Limits, h Handler, ready <-chan struct{}) (string, *Server) {
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
	if ready != nil {
		s.AnswerOnAcceptLoop(ready)
	}
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
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg + "\x00")); err != nil {
		return "", err
	}
	r, err := readOne(c)
	if err != nil {
		return "", err
	}
	return r, nil
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

// The per-UID cap holds for an unprivileged peer (root is exempt).
func TestPerUIDLimit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to connect as another user")
	}
	lim := DefaultLimits()
	lim.MaxConnectionsPerUID = 2
	var served atomic.Int32
	path, _ := serveOn(t, lim, func(ctx context.Context, c *Conn, msg []byte, fds []*os.File) error {
		served.Add(1)
		if p := c.Peer(); p.UID != 65534 {
			t.Errorf("peer uid %d", p.UID)
		}
		return echo(ctx, c, msg, fds)
	})
	script := `import socket,sys
ok=0
ss=[]
for i in range(4):
    s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); ss.append(s)
for s in ss:
    s.settimeout(3)
    try:
        s.sendall(b"hi\0"); d=s.recv(100)
        if d: ok+=1
    except Exception: pass
print(ok)`
	cmd := exec.Command("/usr/bin/python3", "-c", script, path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	if strings.TrimSpace(string(out)) != "2" {
		t.Errorf("%s connections of uid 65534 served, want 2", out)
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
