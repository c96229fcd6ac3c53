package bustest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// OpenPolicy lets everybody own any name and talk to anybody, in both
// directions (a policy with only send_type="method_call" makes clients hang).
const OpenPolicy = `<policy context="default">
    <allow user="*"/> <allow own="*"/> <allow send_type="method_call"/>
    <allow send_destination="*" eavesdrop="true"/> <allow eavesdrop="true"/>
  </policy>`

// Bus is a running private dbus-daemon.
type Bus struct {
	Address string // unix:path=...,guid=...
	Socket  string // the socket path
	Dir     string

	cmd *exec.Cmd
}

// Stop kills the bus daemon before the test ends (tests of a bus that goes
// away); it is idempotent.
func (b *Bus) Stop() {
	if b.cmd != nil && b.cmd.Process != nil {
		b.cmd.Process.Kill()
		b.cmd.Wait()
		b.cmd = nil
	}
}

// Start runs a system-type dbus-daemon with OpenPolicy plus extra config
// (policies, <include>s) on a socket in a temporary directory. It is stopped
// when the test ends. Without dbus-daemon the test fails: the suite's setup
// installs it.
func Start(t testing.TB, extra string) *Bus {
	t.Helper()
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Fatal("dbus-daemon not installed: run tests/setup/install-deps.sh")
	}
	dir, err := os.MkdirTemp("", "bustest-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	b := &Bus{Dir: dir, Socket: filepath.Join(dir, "bus.sock")}
	conf := filepath.Join(dir, "bus.conf")
	text := fmt.Sprintf(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  %s
  %s
</busconfig>
`, b.Socket, OpenPolicy, extra)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	b.cmd = exec.Command(daemon, "--config-file="+conf, "--nofork", "--print-address")
	out, err := b.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	b.cmd.Stderr = &stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Stop()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("dbus-daemon: %s", stderr.String())
		}
	})
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		addr <- strings.TrimSpace(line)
	}()
	select {
	case a := <-addr:
		if a == "" {
			t.Fatalf("dbus-daemon printed no address: %s", stderr.String())
		}
		b.Address = a
		return b
	case <-time.After(20 * time.Second):
		t.Fatal("dbus-daemon did not start")
		return nil
	}
}
