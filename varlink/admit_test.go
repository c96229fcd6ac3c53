package varlink

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/machined-go/machined/internal/dialas"
)

// A server restricted by Admit answers a peer it does not admit
// PermissionDenied on its first call and hangs up, without running the handler;
// admitted peers are served as before.
func TestAdmit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to connect as other users")
	}
	dir, err := os.MkdirTemp("/tmp", "vltest-") // reachable by other users
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
	s := NewServer("test", echo, DefaultLimits(), nil)
	s.Admit(func(uid uint32) bool { return uid == 0 || uid == 65534 })
	ctx, cancel := context.WithCancel(context.Background())
	go s.Serve(ctx, l)
	t.Cleanup(func() {
		cancel()
		sctx, c2 := context.WithTimeout(context.Background(), 5*time.Second)
		defer c2()
		s.Shutdown(sctx)
	})
	dial := func(uid int) *net.UnixConn {
		t.Helper()
		c, err := dialas.Unix(path, uid, uid)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	for _, uid := range []int{0, 65534} {
		if r, err := roundTrip(t, dial(uid), "hi"); err != nil || !strings.Contains(r, `"hi"`) {
			t.Errorf("uid %d: %q %v, want the echo", uid, r, err)
		}
	}
	c := dial(65533)
	r, err := roundTrip(t, c, "hi")
	if err != nil || r != string(refusedPeer[:len(refusedPeer)-1]) {
		t.Errorf("uid 65533: %q %v, want PermissionDenied", r, err)
	}
	if r, err := roundTrip(t, c, "again"); err == nil {
		t.Errorf("uid 65533 still connected after the refusal: %q", r)
	}
}
