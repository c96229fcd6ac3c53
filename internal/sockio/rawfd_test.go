package sockio

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The raw calls of a listener's life: nothing waiting is EAGAIN, not a wait;
// a connection shows in the epoll set, comes out non-blocking and
// close-on-exec with its peer's credentials, and its close takes it out of
// the set.
func TestRawAcceptPeerCredEpoll(t *testing.T) {
	lfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	path := filepath.Join(t.TempDir(), "s")
	if err := unix.Bind(lfd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(lfd, 8); err != nil {
		t.Fatal(err)
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ep)
	if err := EpollCtl(ep, unix.EPOLL_CTL_ADD, lfd, unix.EPOLLIN); err != nil {
		t.Fatal(err)
	}
	events := make([]unix.EpollEvent, 4)
	if n, err := EpollWaitNow(ep, events); n != 0 || err != nil {
		t.Fatalf("empty set: %d events, %v", n, err)
	}
	if _, err := Accept4(lfd); err != unix.EAGAIN {
		t.Fatalf("accept with nobody waiting: %v, want EAGAIN", err)
	}

	cfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(cfd)
	if err := unix.Connect(cfd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if n, err := EpollWaitNow(ep, events); n != 1 || err != nil || int(events[0].Fd) != lfd {
		t.Fatalf("after connect: %d events (%v), %v; want the listener", n, events[:n], err)
	}
	fd, err := Accept4(lfd)
	if err != nil {
		t.Fatal(err)
	}
	if fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); fl&unix.O_NONBLOCK == 0 {
		t.Error("accepted socket blocks")
	}
	if fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC == 0 {
		t.Error("accepted socket is inherited by children")
	}
	cred, err := PeerCred(fd)
	if err != nil || int(cred.Uid) != os.Getuid() || int(cred.Pid) != os.Getpid() {
		t.Errorf("peer %+v %v, want uid %d pid %d", cred, err, os.Getuid(), os.Getpid())
	}

	if err := EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, unix.EPOLLIN); err != nil {
		t.Fatal(err)
	}
	unix.Write(cfd, []byte("x"))
	if n, _ := EpollWaitNow(ep, events); n != 1 || int(events[0].Fd) != fd {
		t.Fatalf("after a write: %d events (%v), want the connection", n, events[:n])
	}
	if err := Close(fd); err != nil {
		t.Fatal(err)
	}
	if n, _ := EpollWaitNow(ep, events); n != 0 {
		t.Errorf("a closed socket still in the set: %v", events[:n])
	}
	if err := EpollCtl(ep, unix.EPOLL_CTL_DEL, fd, 0); err == nil {
		t.Error("a closed socket could still be taken out of the set")
	}
}

func TestNewUnixAddrBounds(t *testing.T) {
	long := "/" + strings.Repeat("a", 106) // 107 bytes and the NUL: the most sun_path holds
	if _, err := NewUnixAddr(long); err != nil {
		t.Errorf("107-byte path: %v", err)
	}
	for _, bad := range []string{"", long + "a", "@abstract", "/a\x00b"} {
		if _, err := NewUnixAddr(bad); !errors.Is(err, unix.EINVAL) {
			t.Errorf("NewUnixAddr(%q) = %v, want EINVAL", bad, err)
		}
	}
}

// SendDatagramNow delivers whole datagrams and answers EAGAIN, without
// waiting, once the receiver's queue is full.
func TestSendDatagramNow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sock")
	rc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	to, err := NewUnixAddr(path)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := SendDatagramNow(fd, []byte("PRIORITY=6\n"), to); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := rc.Read(buf)
	if err != nil || string(buf[:n]) != "PRIORITY=6\n" {
		t.Fatalf("read %q %v", buf[:n], err)
	}
	big := make([]byte, 4096)
	for i := 0; ; i++ {
		err := SendDatagramNow(fd, big, to)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if i > 1<<16 {
			t.Fatal("the receiver's queue never filled")
		}
	}
	missing, _ := NewUnixAddr(filepath.Join(t.TempDir(), "none"))
	if err := SendDatagramNow(fd, big, missing); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("send to a missing socket: %v, want ENOENT", err)
	}
}

// Send returns what a full socket did not take, with EAGAIN.
func TestSendReturnsTheRest(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	if rest, err := Send(fds[0], []byte("hello")); len(rest) != 0 || err != nil {
		t.Fatalf("Send with room: %d left, %v", len(rest), err)
	}
	big := make([]byte, 16<<20)
	rest, err := Send(fds[0], big)
	if !errors.Is(err, unix.EAGAIN) || len(rest) == 0 || len(rest) >= len(big) {
		t.Fatalf("Send of 16 MiB: %d left, %v; want part of it left with EAGAIN", len(rest), err)
	}
}
