package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// vconn is a lean Varlink client on a unix socket: it writes a request and reads
// NUL-terminated replies, decoding as little as possible, so that the client's own
// CPU cost (it shares the two vCPUs with the daemon) stays small and identical for
// every daemon. It makes blocking system calls on a socket of its own, outside
// Go's network poller, as C clients (sd-varlink, glibc's nss-systemd) wait for a
// reply: watching only for it. The poller watches every socket for room to write
// as well, so a client parked on a reply is woken, and preempts the daemon, when
// the daemon reads its request (DECISIONS 136).
type vconn struct {
	fd    int
	buf   []byte // unread bytes, a window of store
	store []byte
}

// Timeouts of one read and one write: a daemon that stops answering fails the
// workload rather than hanging the run.
var (
	readTimeout  = unix.Timeval{Sec: 120}
	writeTimeout = unix.Timeval{Sec: 60}
)

func vdial(path string) (*vconn, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := dialFD(fd, path); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("dial unix %s: %w", path, err)
	}
	return &vconn{fd: fd, store: make([]byte, 0, 256<<10)}, nil
}

func dialFD(fd int, path string) error {
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &readTimeout); err != nil {
		return err
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &writeTimeout); err != nil {
		return err
	}
	err := unix.Connect(fd, &unix.SockaddrUnix{Name: path})
	for errors.Is(err, unix.EINTR) {
		// Interrupted (a signal to the runtime): the connection goes on; a
		// second connect waits for it.
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
		if errors.Is(err, unix.EISCONN) {
			return nil
		}
	}
	return err
}

// Close hangs up first: that wakes a read blocked on the socket, which a
// close alone would not.
func (v *vconn) Close() error {
	unix.Shutdown(v.fd, unix.SHUT_RDWR)
	return unix.Close(v.fd)
}

// request encodes one Varlink call; params is pre-encoded JSON.
func request(method, params string, more bool) []byte {
	if params == "" {
		params = "{}"
	}
	m := ""
	if more {
		m = `,"more":true`
	}
	return []byte(`{"method":"` + method + `","parameters":` + params + m + "}\x00")
}

func (v *vconn) send(req []byte) error {
	for len(req) > 0 {
		n, err := unix.Write(v.fd, req)
		switch {
		case errors.Is(err, unix.EINTR):
			// A socket with a timeout is not restarted after a signal.
		case err != nil:
			return timeoutError("write", err)
		default:
			req = req[n:]
		}
	}
	return nil
}

// next returns the next reply message (valid until the following call).
func (v *vconn) next() ([]byte, error) {
	for {
		if i := bytes.IndexByte(v.buf, 0); i >= 0 {
			msg := v.buf[:i]
			v.buf = v.buf[i+1:]
			return msg, nil
		}
		// Move the unread rest to the front of store (growing it when full), then
		// read after it.
		k := copy(v.store[:cap(v.store)], v.buf)
		if k == cap(v.store) {
			grown := make([]byte, 2*k)
			copy(grown, v.store[:k])
			v.store = grown[:0]
		}
		v.buf = v.store[:k]
		n, err := unix.Read(v.fd, v.buf[len(v.buf):cap(v.buf)])
		switch {
		case errors.Is(err, unix.EINTR):
		case err != nil:
			return nil, timeoutError("read", err)
		case n == 0:
			return nil, io.EOF
		default:
			v.buf = v.buf[:len(v.buf)+n]
		}
	}
}

// timeoutError names a timed-out read or write as such: on a socket with a
// timeout the kernel reports it as EAGAIN.
func timeoutError(op string, err error) error {
	if errors.Is(err, unix.EAGAIN) {
		return fmt.Errorf("%s: timed out: %w", op, os.ErrDeadlineExceeded)
	}
	return fmt.Errorf("%s: %w", op, err)
}

var (
	errKey       = []byte(`"error":`)
	continuesKey = []byte(`"continues":true`)
)

// replyError returns the error name of a reply, "" for a success.
func replyError(msg []byte) string {
	if !bytes.Contains(msg, errKey) {
		return ""
	}
	var r struct {
		Error      string          `json:"error"`
		Parameters json.RawMessage `json:"parameters"`
	}
	if json.Unmarshal(msg, &r) != nil {
		return "unparsable reply"
	}
	if len(r.Parameters) > 0 && string(r.Parameters) != "{}" {
		return r.Error + " " + string(r.Parameters)
	}
	return r.Error
}

// call makes one call and returns its single reply.
func (v *vconn) call(req []byte) ([]byte, error) {
	if err := v.send(req); err != nil {
		return nil, err
	}
	msg, err := v.next()
	if err != nil {
		return nil, err
	}
	if e := replyError(msg); e != "" {
		return msg, &varlinkError{e}
	}
	return msg, nil
}

// callMore makes a call with more:true and counts its replies. Machine names and
// the other fields the benchmark registers never contain `"continues":true`, so
// a byte search decides the end of the stream.
func (v *vconn) callMore(req []byte) (int, error) {
	if err := v.send(req); err != nil {
		return 0, err
	}
	n := 0
	for {
		msg, err := v.next()
		if err != nil {
			return n, err
		}
		if e := replyError(msg); e != "" {
			return n, &varlinkError{e}
		}
		n++
		if !bytes.Contains(msg, continuesKey) {
			return n, nil
		}
	}
}

type varlinkError struct{ name string }

func (e *varlinkError) Error() string { return "varlink error " + e.name }

// callOnce dials, calls and closes: a client that connects per call.
func callOnce(path string, req []byte) ([]byte, error) {
	v, err := vdial(path)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	msg, err := v.call(req)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), msg...), nil
}

func registerReq(name string, pid int) []byte {
	return request("io.systemd.Machine.Register",
		fmt.Sprintf(`{"name":%q,"class":"container","leader":%d}`, name, pid), false)
}

func unregisterReq(name string) []byte {
	return request("io.systemd.Machine.Unregister", fmt.Sprintf(`{"name":%q}`, name), false)
}

var listAllReq = request("io.systemd.Machine.List", "{}", true)

func listNameReq(name string) []byte {
	return request("io.systemd.Machine.List", fmt.Sprintf(`{"name":%q}`, name), false)
}

func userByUIDReq(uid uint32) []byte {
	return request("io.systemd.UserDatabase.GetUserRecord",
		fmt.Sprintf(`{"uid":%d,"service":"io.systemd.Machine"}`, uid), false)
}

func userByNameReq(name string) []byte {
	return request("io.systemd.UserDatabase.GetUserRecord",
		fmt.Sprintf(`{"userName":%q,"service":"io.systemd.Machine"}`, name), false)
}
