package client

import (
	"bufio"
	"encoding/json"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeCall is one call the fake daemon received.
type fakeCall struct {
	Method     string          `json:"method"`
	Parameters json.RawMessage `json:"parameters"`
	More       bool            `json:"more"`
}

// fakeConn is the daemon's side of one client connection.
type fakeConn struct{ c *net.UnixConn }

// reply sends one reply; fds ride along as SCM_RIGHTS.
func (f fakeConn) reply(params any, errName string, continues bool, fds ...int) {
	m := map[string]any{"parameters": params}
	if errName != "" {
		m["error"] = errName
	}
	if continues {
		m["continues"] = true
	}
	b, _ := json.Marshal(m)
	b = append(b, 0)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	f.c.WriteMsgUnix(b, oob, nil)
}

// fakeDaemon serves a unix socket with handle; accepts counts the connections.
type fakeDaemon struct {
	path    string
	accepts atomic.Int32
	calls   chan fakeCall
}

func startFake(t *testing.T, handle func(fakeConn, fakeCall)) *fakeDaemon {
	t.Helper()
	d := &fakeDaemon{path: filepath.Join(t.TempDir(), "sock"), calls: make(chan fakeCall, 64)}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: d.path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []*net.UnixConn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			d.accepts.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := bufio.NewReader(c)
				for {
					msg, err := r.ReadBytes(0)
					if err != nil {
						return
					}
					var call fakeCall
					json.Unmarshal(msg[:len(msg)-1], &call)
					select {
					case d.calls <- call:
					default:
					}
					handle(fakeConn{c}, call)
				}
			}()
		}
	}()
	return d
}
