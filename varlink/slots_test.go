package varlink

import (
	"net"
	"os"
	"strings"
	"testing"

	"github.com/machined-go/machined/internal/dialas"
)

// Unprivileged users share MaxConnections-ReservedConnections, each at most
// MaxConnectionsPerUID of it; root gets in while they hold all of that, up to
// MaxConnections, and no further.
func TestConnectionReserve(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to connect as other users")
	}
	lim := DefaultLimits()
	lim.MaxConnections, lim.ReservedConnections, lim.MaxConnectionsPerUID = 6, 2, 3
	path, _ := serveOn(t, lim, echo)
	served := func(uid int) bool {
		t.Helper()
		var c *net.UnixConn
		var err error
		if uid == 0 {
			c, err = net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
		} else {
			c, err = dialas.Unix(path, uid, uid)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		r, err := roundTrip(t, c, "hi")
		return err == nil && strings.Contains(r, `"hi"`)
	}
	for i := 0; i < 3; i++ {
		if !served(65534) {
			t.Fatalf("connection %d of uid 65534 refused within its share", i+1)
		}
	}
	if served(65534) {
		t.Error("uid 65534 got more than MaxConnectionsPerUID")
	}
	if !served(65533) {
		t.Fatal("uid 65533 refused while the unprivileged share had room")
	}
	if served(65533) {
		t.Error("an unprivileged user got into the reserve")
	}
	for i := 0; i < 2; i++ {
		if !served(0) {
			t.Fatalf("root connection %d refused while the reserve had room", i+1)
		}
	}
	if served(0) {
		t.Error("root got more than MaxConnections")
	}
}
