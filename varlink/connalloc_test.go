package varlink

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

var raceEnabled bool // set by race_test.go

// oneCallPerConnection connects, sends one call, reads the reply and hangs up,
// with raw syscalls so that the client adds no allocations of its own: what
// glibc's nss-systemd does for every lookup.
func oneCallPerConnection(t testing.TB, path string, req []byte) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(fd, req); err != nil {
		t.Fatal(err)
	}
	var in [256]byte
	for {
		n, err := unix.Read(fd, in[:])
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 || in[n-1] == 0 {
			return
		}
	}
}

func startEchoServer(t testing.TB) (string, *Server) {
	t.Helper()
	return startEchoServerWith(t, nil)
}

// startEchoServerWith is startEchoServer with AnswerOnAcceptLoop(ready) when
// ready is not nil.
func startEchoServerWith(t testing.TB, ready <-chan struct{}) (string, *Server) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s")
	l, err := Listen(path, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	reply := []byte("{\"parameters\":{}}\x00")
	h := func(ctx context.Context, c *Conn, msg []byte, fds []*os.File) error {
		_, err := c.Write(ctx, reply)
		return err
	}
	s := NewServer("t", h, DefaultLimits(), nil)
	if ready != nil {
		s.AnswerOnAcceptLoop(ready)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done; s.Shutdown(context.Background()) })
	return path, s
}

// A connection that makes one call and hangs up, as every NSS lookup does,
// costs the daemon one allocation for its state where it cost several: the
// out-of-band buffer, the pidfd holder and the RawConn live in the Conn, the
// lone reply is written without a buffer, and no context hook is registered
// per connection. What remains is mostly the net package's accept.
func TestOneCallConnectionAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector adds allocations of its own")
	}
	path, _ := startEchoServer(t)
	req := []byte("{\"method\":\"x.Y\"}\x00")
	oneCallPerConnection(t, path, req)
	allocs := testing.AllocsPerRun(200, func() { oneCallPerConnection(t, path, req) })
	if allocs > 19 {
		t.Errorf("%.1f allocations per one-call connection", allocs)
	}
}

func BenchmarkOneCallPerConnection(b *testing.B) {
	path, _ := startEchoServer(b)
	req := []byte("{\"method\":\"x.Y\"}\x00")
	b.ReportAllocs()
	for b.Loop() {
		oneCallPerConnection(b, path, req)
	}
}

// Answered by the accept loop, such a connection costs its Conn (one of the
// two allocations counted is the client's): no net package accept, no worker
// job, no RawConn callbacks, and the calls' context lives in the Conn.
func TestOneCallConnectionAllocationsOnTheAcceptLoop(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector adds allocations of its own")
	}
	path, _ := startEchoServerWith(t, readyNow())
	req := []byte("{\"method\":\"x.Y\"}\x00")
	oneCallPerConnection(t, path, req)
	allocs := testing.AllocsPerRun(200, func() { oneCallPerConnection(t, path, req) })
	if allocs > 2 {
		t.Errorf("%.1f allocations per one-call connection", allocs)
	}
}

func BenchmarkOneCallPerConnectionOnTheAcceptLoop(b *testing.B) {
	path, _ := startEchoServerWith(b, readyNow())
	req := []byte("{\"method\":\"x.Y\"}\x00")
	b.ReportAllocs()
	for b.Loop() {
		oneCallPerConnection(b, path, req)
	}
}

// A call on a kept connection that the accept loop answers allocates nothing
// on the daemon's side: the read buffer is pooled, the reply goes out as the
// handler wrote it, and the connection is not touched in the epoll set.
func TestKeptConnectionCallAllocationsOnTheAcceptLoop(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector adds allocations of its own")
	}
	path, _ := startEchoServerWith(t, readyNow())
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := []byte("{\"method\":\"x.Y\"}\x00")
	reply := make([]byte, 64)
	call := func() {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Read(reply); err != nil || reply[n-1] != 0 {
			t.Fatalf("read %q %v", reply[:n], err)
		}
	}
	call()
	if allocs := testing.AllocsPerRun(500, call); allocs > 0 {
		t.Errorf("%.1f allocations per call on a kept connection", allocs)
	}
}
