package busconn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/bustest"
)

// socketFDs lists this process's socket descriptors.
func socketFDs(t *testing.T) map[int]bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]bool{}
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err == nil && strings.HasPrefix(target, "socket:") {
			fd, _ := strconv.Atoi(e.Name())
			out[fd] = true
		}
	}
	return out
}

// epollWatches returns, for every epoll set of this process, the events each
// watched descriptor is registered for (fd -> events, all sets together).
func epollWatches(t *testing.T) map[int][]uint32 {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int][]uint32{}
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || target != "anon_inode:[eventpoll]" {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			f := strings.Fields(line)
			if len(f) < 4 || f[0] != "tfd:" || f[2] != "events:" {
				continue
			}
			fd, _ := strconv.Atoi(f[1])
			ev, _ := strconv.ParseUint(f[3], 16, 32)
			out[fd] = append(out[fd], uint32(ev))
		}
	}
	return out
}

// The bus socket is watched for input only. In Go's netpoller it was also
// watched for output room, and the bus reading each reply or signal woke the
// idle daemon once more for nothing.
func TestBusSocketNotWatchedForOutput(t *testing.T) {
	bus := bustest.Start(t, "")
	before := socketFDs(t)
	conn, err := Dial(bus.Address, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.BusObject().Call("org.freedesktop.DBus.Peer.Ping", 0).Err; err != nil {
		t.Fatal(err)
	}
	watches := epollWatches(t)
	found := 0
	for fd := range socketFDs(t) {
		if before[fd] {
			continue
		}
		cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil || int(cred.Pid) == os.Getpid() {
			continue // the socketpair to godbus
		}
		found++
		if len(watches[fd]) == 0 {
			t.Errorf("bus socket %d is in no epoll set", fd)
		}
		for _, ev := range watches[fd] {
			if ev&unix.EPOLLOUT != 0 {
				t.Errorf("bus socket %d is watched for output (events %#x)", fd, ev)
			}
			if ev&unix.EPOLLIN == 0 {
				t.Errorf("bus socket %d is watched without input (events %#x)", fd, ev)
			}
		}
	}
	if found != 1 {
		t.Fatalf("found %d new sockets connected to another process, want the bus's one", found)
	}
}

func busSocketPair(t *testing.T) (*busSocket, *net.UnixConn) {
	t.Helper()
	return busSocketPairOf(t, unix.SOCK_STREAM)
}

// busSocketPairOf is a busSocket on one end of a socket pair of type typ, and
// the other end.
func busSocketPairOf(t *testing.T, typ int) (*busSocket, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := fileConn(fds[0], "bus")
	if err != nil {
		t.Fatal(err)
	}
	peer, err := fileConn(fds[1], "peer")
	if err != nil {
		t.Fatal(err)
	}
	s, err := newBusSocket(ours)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.shutdown(); s.release(); peer.Close() })
	return s, peer
}

// The reader parks until input arrives, gets it with its fds, and sees the
// peer's hang-up as io.EOF.
func TestBusSocketReadParksAndEnds(t *testing.T) {
	s, peer := busSocketPair(t)
	type read struct {
		data string
		fds  int
		err  error
	}
	reads := make(chan read)
	go func() {
		buf, oob := make([]byte, 64), make([]byte, unix.CmsgSpace(4*4))
		for {
			n, oobn, _, err := s.readMsg(buf, oob)
			var got []int
			if oobn > 0 {
				got, _ = rights(oob[:oobn])
				closeFDs(got)
			}
			reads <- read{string(buf[:n]), len(got), err}
			if err != nil {
				return
			}
		}
	}()
	time.Sleep(10 * time.Millisecond) // let it park: the write below must wake it
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, _, err := peer.WriteMsgUnix([]byte("hello"), unix.UnixRights(int(r.Fd())), nil); err != nil {
		t.Fatal(err)
	}
	if got := <-reads; got.data != "hello" || got.fds != 1 || got.err != nil {
		t.Fatalf("first read %+v, want hello with one fd", got)
	}
	time.Sleep(10 * time.Millisecond)
	if _, err := peer.Write([]byte("again")); err != nil {
		t.Fatal(err)
	}
	if got := <-reads; got.data != "again" || got.err != nil {
		t.Fatalf("second read %+v", got)
	}
	peer.Close()
	if got := <-reads; !errors.Is(got.err, io.EOF) {
		t.Fatalf("after the hang-up: %+v, want io.EOF", got)
	}
}

// shutdown wakes a parked reader, which answers net.ErrClosed.
func TestBusSocketShutdownWakesReader(t *testing.T) {
	s, _ := busSocketPair(t)
	errc := make(chan error)
	go func() {
		_, _, _, err := s.readMsg(make([]byte, 16), nil)
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	s.shutdown()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("parked reader after shutdown: %v, want net.ErrClosed", err)
	}
	if err := s.write([]byte("x"), nil); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after shutdown: %v, want net.ErrClosed", err)
	}
}

// A write larger than the socket takes waits for the peer to read and
// arrives whole; fds ride on its first byte. A writer waiting for room is
// released by shutdown.
func TestBusSocketWriteWaitsForRoom(t *testing.T) {
	s, peer := busSocketPair(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB, more than a socket buffer
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	done := make(chan error, 1)
	go func() { done <- s.write(big, []int{int(r.Fd())}) }()
	got := make([]byte, 0, len(big))
	buf, oob := make([]byte, 64<<10), make([]byte, 256)
	fds := 0
	for len(got) < len(big) {
		n, oobn, _, _, err := peer.ReadMsgUnix(buf, oob)
		if err != nil {
			t.Fatal(err)
		}
		if oobn > 0 {
			rs, _ := rights(oob[:oobn])
			fds += len(rs)
			closeFDs(rs)
		}
		got = append(got, buf[:n]...)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) || fds != 1 {
		t.Fatalf("peer got %d bytes (equal: %v) and %d fds", len(got), bytes.Equal(got, big), fds)
	}

	go func() { done <- s.write(big, nil) }()
	time.Sleep(20 * time.Millisecond) // the socket fills; the writer waits
	s.shutdown()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) && !errors.Is(err, unix.EPIPE) {
			t.Fatalf("waiting writer after shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown did not release a writer waiting for room")
	}
}
