package tests

import (
	"net"
	"testing"

	"github.com/machined-go/machined/internal/dialas"
)

// Unprivileged users filling their whole share of connections lock out
// neither root's clients nor varlinkctl run by root.
func TestRootGetsInWhenUsersFillTheirShare(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "--units", "none", "--max-connections", "40", "--reserved-connections", "8", "--max-connections-per-uid", "16")
	ping := `{"method":"io.systemd.service.Ping","parameters":{}}`
	open := func(uid int) (net.Conn, error) {
		var c net.Conn
		var err error
		if uid == 0 {
			c, err = net.Dial("unix", d.sock())
		} else {
			c, err = dialas.Unix(d.sock(), uid, uid)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_, err = roundTripRaw(c, ping)
		return c, err
	}
	for _, uid := range []int{65534, 65533} {
		for i := 0; i < 16; i++ {
			if _, err := open(uid); err != nil {
				t.Fatalf("uid %d, connection %d: %v", uid, i+1, err)
			}
		}
		if _, err := open(uid); err == nil {
			t.Errorf("uid %d got a connection beyond --max-connections-per-uid", uid)
		}
	}
	if _, err := open(65532); err == nil {
		t.Error("a third user got a connection with the unprivileged share full")
	}
	for i := 0; i < 7; i++ {
		if _, err := open(0); err != nil {
			t.Fatalf("root connection %d: %v", i+1, err)
		}
	}
	// The last reserved slot, through a real client.
	if out, errOut, code := varlinkctl(t, "call", "unix:"+d.sock(), "--more", "io.systemd.Machine.List", "{}"); code != 0 {
		t.Fatalf("varlinkctl as root with the unprivileged share full: %s %s", out, errOut)
	}
}
