package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
)

// A per-user instance started by its user's service manager (MANAGERPID set)
// whose bus does not have that manager yet waits for it rather than run
// without scopes for good: the manager joins the user bus only once the bus
// runs, and a socket-activated instance's own connection may be what starts
// the bus. Under a real systemd --user this lost allocateUnit now and then
// (TestUserInstanceScopes).
func TestUserInstanceWaitsForUserManager(t *testing.T) {
	needRoot(t)
	bus := startPrivateBus(t)
	dir := newRuntimeDir(t)
	logPath := filepath.Join(t.TempDir(), "daemon.log")
	cmd := exec.Command(daemonBin, "--user", "--log-level", "debug")
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+dir, "DBUS_SESSION_BUS_ADDRESS="+bus.addr, "MANAGERPID=1")
	daemonLog := startLogged(t, cmd, logPath, "daemon")
	eventually(t, "the instance waits for the user's manager", func() bool {
		if strings.Contains(daemonLog(), "no user service manager") {
			t.Fatal("the instance gave up on the user's manager at once")
		}
		return strings.Contains(daemonLog(), "waiting for the user's service manager")
	})

	manager, err := dbus.Connect(bus.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer manager.Close()
	if r, err := manager.RequestName("org.freedesktop.systemd1", dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own org.freedesktop.systemd1: %v %v", r, err)
	}
	eventually(t, "the instance uses the user's manager", func() bool {
		return strings.Contains(daemonLog(), `units="systemd"`)
	})
}
