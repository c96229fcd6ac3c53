package tests

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The machine socket the daemon binds has its other names: the MachineImage
// interface's beside it and both interfaces' entries in the Varlink registry
// under the runtime directory. Clients reach the daemon through them; a stale
// link from an earlier run is replaced; they go when the daemon stops.
func TestSocketAliases(t *testing.T) {
	dir := newRuntimeDir(t)
	registry := filepath.Join(dir, "varlink", "registry")
	if err := os.MkdirAll(registry, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/run/nowhere", filepath.Join(registry, "io.systemd.Machine")); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, dir: dir, args: []string{"--runtime-dir", dir, "--bus", "none", "--units", "none"}, env: []string{noSystemdEnv(dir)}}
	d.start()
	t.Cleanup(func() { d.stop(syscall.SIGTERM) })
	links := []string{
		filepath.Join(dir, "systemd", "machine", "io.systemd.MachineImage"),
		filepath.Join(registry, "io.systemd.Machine"),
		filepath.Join(registry, "io.systemd.MachineImage"),
	}
	for _, link := range links {
		if target, err := os.Readlink(link); err != nil || target != d.sock() {
			t.Errorf("%s -> %q %v, want %s", link, target, err, d.sock())
		}
		if out, errOut, code := varlinkctlAs(t, &syscall.Credential{Uid: 65534, Gid: 65534}, "call", link, "io.systemd.Machine.List", `{"name":".host"}`); code != 0 {
			t.Errorf("List through %s: %s %s", link, out, errOut)
		}
	}
	d.stop(syscall.SIGTERM)
	for _, link := range links {
		if _, err := os.Lstat(link); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", link, err)
		}
	}
}
