package systemd

import (
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/internal/bustest"
)

// privateBus starts a dbus-daemon for the test and returns its address.
func privateBus(t *testing.T) string {
	t.Helper()
	return bustest.Start(t, "").Address
}

// connect opens a connection to the private bus, closed at cleanup.
func connect(t *testing.T, addr string) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
