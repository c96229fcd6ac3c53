package bustest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// Polkitd is where Debian installs the polkit daemon.
const Polkitd = "/usr/lib/polkit-1/polkitd"

// StartPolkitd runs the real polkitd on b in a private mount namespace where
// /etc/polkit-1/rules.d holds rules and policyFile (our packaged
// org.freedesktop.machine1.policy) stands in for the installed action file.
// It returns once polkitd owns its name. Needs root.
func StartPolkitd(t testing.TB, b *Bus, rules, policyFile string) {
	t.Helper()
	if _, err := os.Stat(Polkitd); err != nil {
		t.Fatal("polkitd not installed: run tests/setup/install-deps.sh")
	}
	dir, err := os.MkdirTemp("", "polkit-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	rulesDir := filepath.Join(dir, "rules.d")
	os.Mkdir(rulesDir, 0o755)
	if err := os.WriteFile(filepath.Join(rulesDir, "10-test.rules"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	policy, err := os.ReadFile(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	policyCopy := filepath.Join(dir, "org.freedesktop.machine1.policy")
	if err := os.WriteFile(policyCopy, policy, 0o644); err != nil {
		t.Fatal(err)
	}
	script := `set -e; mount --bind "$1" /etc/polkit-1/rules.d
a=/usr/share/polkit-1/actions/org.freedesktop.machine1.policy
if [ -e "$a" ]; then mount --bind "$2" "$a"; else mount -t tmpfs tmpfs "$(dirname "$a")"; cp "$2" "$a"; fi
exec "$3" --no-debug`
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", rulesDir, policyCopy, Polkitd)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+b.Address)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("polkitd:\n%s", out.String())
		}
	})
	conn, err := dbus.Connect(b.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var has bool
		conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, "org.freedesktop.PolicyKit1").Store(&has)
		if has {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("polkitd did not come up")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
