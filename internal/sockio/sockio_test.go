package sockio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func pair(t *testing.T) (a, b *net.UnixConn, ra, rb syscall.RawConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) (*net.UnixConn, syscall.RawConn) {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		uc := c.(*net.UnixConn)
		t.Cleanup(func() { uc.Close() })
		rc, err := uc.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		return uc, rc
	}
	a, ra = conn(fds[0])
	b, rb = conn(fds[1])
	return a, b, ra, rb
}

// Data and fds sent with sendmsg arrive through ReadMsg; a closed peer is EOF.
func TestReadMsg(t *testing.T) {
	a, b, _, rb := pair(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	wfd := int(w.Fd()) // here: the race detector cannot see the socket ordering Close after the send
	go func() {
		time.Sleep(20 * time.Millisecond) // ReadMsg has to wait for it
		a.WriteMsgUnix([]byte("hello"), unix.UnixRights(wfd), nil)
		a.Close()
	}()
	p := make([]byte, 64)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, flags, err := ReadMsg(rb, p, oob)
	if err != nil || string(p[:n]) != "hello" || flags&unix.MSG_CTRUNC != 0 {
		t.Fatalf("ReadMsg: %q, %d, %v", p[:n], flags, err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control: %v, %v", msgs, err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("rights: %v, %v", fds, err)
	}
	got := os.NewFile(uintptr(fds[0]), "received")
	defer got.Close()
	if fl, _ := unix.FcntlInt(got.Fd(), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC == 0 {
		t.Error("received fd is not close-on-exec")
	}
	if _, err := got.Write([]byte("x")); err != nil {
		t.Fatalf("received fd: %v", err)
	}
	if _, _, _, err := ReadMsg(rb, p, oob); !errors.Is(err, io.EOF) {
		t.Fatalf("after close: %v, want EOF", err)
	}
	_ = b
}

// Write delivers everything even when the peer drains slowly, and gives up
// with the deadline when the peer stops reading.
func TestWrite(t *testing.T) {
	a, b, ra, _ := pair(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB, beyond the socket buffer
	got := make(chan []byte)
	go func() {
		var all []byte
		buf := make([]byte, 4096)
		for len(all) < len(big) {
			n, err := b.Read(buf)
			if err != nil {
				break
			}
			all = append(all, buf[:n]...)
		}
		got <- all
	}()
	if err := Write(ra, big); err != nil {
		t.Fatal(err)
	}
	if all := <-got; !bytes.Equal(all, big) {
		t.Fatalf("peer got %d bytes, want %d", len(all), len(big))
	}

	a.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	if err := Write(ra, big); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write to a peer that does not read: %v, want the deadline", err)
	}
	b.Close()
	a.SetWriteDeadline(time.Time{})
	if err := Write(ra, []byte("x")); !errors.Is(err, unix.EPIPE) {
		t.Fatalf("write to a closed peer: %v, want EPIPE", err)
	}
}
