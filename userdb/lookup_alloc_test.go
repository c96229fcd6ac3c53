package userdb

import (
	"context"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service"
	"github.com/machined-go/machined/varlink"
)

// lookupServer serves the userdb dispatcher on a listener of its own and
// returns a connected raw socket: the client adds no allocations of its own.
func lookupServer(t testing.TB) int {
	t.Helper()
	mgr, err := service.New(service.Config{StateDir: filepath.Join(t.TempDir(), "machines")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Close)
	path := filepath.Join(t.TempDir(), "s")
	l, err := varlink.Listen(path, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDispatcher(mgr, varlink.Identity{}, nil)
	s := varlink.NewServer("userdb", d.Handle, varlink.DefaultLimits(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	return fd
}

func lookupRound(t testing.TB, fd int, req []byte, in []byte) {
	if _, err := unix.Write(fd, req); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := unix.Read(fd, in)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 || in[n-1] == 0 {
			return
		}
	}
}

var raceEnabled bool // set by race_test.go

// A lookup on a persistent connection that finds nothing, the answer most
// NSS lookups get from us (nss-systemd asks every userdb service), costs the
// Call and the strings it names: its method and its service. The
// fields decode into the stack, the error is told without errors.As, and the
// empty parameters encode without encoding/json.
func TestNoRecordLookupAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector adds allocations of its own")
	}
	fd := lookupServer(t)
	req := []byte(`{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{"uid":1001000,"service":"io.systemd.Machine"}}` + "\x00")
	in := make([]byte, 4096)
	lookupRound(t, fd, req, in)
	if allocs := testing.AllocsPerRun(200, func() { lookupRound(t, fd, req, in) }); allocs > 3 {
		t.Errorf("%.1f allocations per lookup", allocs)
	}
	if want := `{"parameters":{},"error":"io.systemd.UserDatabase.NoRecordFound"}`; string(in[:len(want)]) != want {
		t.Errorf("reply %q, want %q", in[:len(want)], want)
	}
}

func BenchmarkGetUserRecordPersistent(b *testing.B) {
	fd := lookupServer(b)
	req := []byte(`{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{"uid":1001000,"service":"io.systemd.Machine"}}` + "\x00")
	in := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		lookupRound(b, fd, req, in)
	}
}
