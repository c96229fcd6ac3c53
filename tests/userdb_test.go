package tests

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The userdb socket must sit where nss-systemd looks: /run/systemd/userdb. These
// tests therefore run one at a time and refuse to start while another machined
// serves that path. They hold an exclusive flock on /tmp/stock-paths.lock while
// they use it, as the side-by-side harness does while upstream runs there.
const nssUserdbDir = "/run/systemd/userdb"

// lockStockPaths waits for, and holds until the test ends, the lock that every
// user of the host's stock machined paths takes.
func lockStockPaths(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile("/tmp/stock-paths.lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}

func startUserdbDaemon(t *testing.T) *daemon {
	t.Helper()
	needRoot(t)
	lockStockPaths(t)
	sock := filepath.Join(nssUserdbDir, "io.systemd.Machine")
	if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		c.Close()
		t.Fatalf("another machined serves %s; stop it before running the userdb tests", sock)
	}
	d := startDaemon(t, "--userdb-dir", nssUserdbDir, "--units", "none")
	t.Cleanup(func() { os.Remove(sock) })
	return d
}

func getent(t *testing.T, db, key string) (string, bool) {
	t.Helper()
	out, err := exec.Command("getent", db, key).Output()
	return strings.TrimSpace(string(out)), err == nil
}

// Synthesized users and groups resolve through glibc (nss-systemd), userdbctl
// and varlinkctl, and stop resolving when their machine goes.
func TestUserdbRealClients(t *testing.T) {
	d := startUserdbDaemon(t)
	ns := spawnUserNSLeader(t, 655360)
	register(t, d, "ns1", ns.pid)

	want := "vu-ns1-0:x:655360:65534:UID 0 of Container ns1:/:/usr/sbin/nologin"
	for _, key := range []string{"vu-ns1-0", "655360"} {
		if got, ok := getent(t, "passwd", key); !ok || got != want {
			t.Errorf("getent passwd %s = %q, want %q", key, got, want)
		}
	}
	if got, ok := getent(t, "passwd", "vu-ns1-1000"); !ok || !strings.HasPrefix(got, "vu-ns1-1000:x:656360:65534:") {
		t.Errorf("getent passwd vu-ns1-1000 = %q", got)
	}
	if got, ok := getent(t, "group", "vg-ns1-0"); !ok || got != "vg-ns1-0:x:655360:" {
		t.Errorf("getent group vg-ns1-0 = %q", got)
	}
	if got, ok := getent(t, "group", "655365"); !ok || !strings.HasPrefix(got, "vg-ns1-5:x:655365:") {
		t.Errorf("getent group 655365 = %q", got)
	}

	// ls shows names for files owned by shifted ids.
	f := filepath.Join(d.dir, "owned")
	os.WriteFile(f, nil, 0o644)
	os.Chown(f, 656360, 655365)
	out, _ := exec.Command("ls", "-l", f).Output()
	if !strings.Contains(string(out), "vu-ns1-1000 vg-ns1-5") {
		t.Errorf("ls -l: %s", out)
	}
	out, _ = exec.Command("ls", "-ln", f).Output()
	if !strings.Contains(string(out), "656360 655365") {
		t.Errorf("ls -ln: %s", out)
	}

	out, err := exec.Command("userdbctl", "user", "vu-ns1-0", "-j").Output()
	if err != nil || !strings.Contains(string(out), `"disposition" : "container"`) && !strings.Contains(string(out), `"disposition":"container"`) {
		t.Errorf("userdbctl user: %v %s", err, out)
	}
	out, err = exec.Command("userdbctl", "group", "vg-ns1-0", "-j").Output()
	if err != nil || !strings.Contains(string(out), "vg-ns1-0") {
		t.Errorf("userdbctl group: %v %s", err, out)
	}
	sock := filepath.Join(nssUserdbDir, "io.systemd.Machine")
	for _, more := range []bool{false, true} {
		args := []string{"call", "-j", sock, "io.systemd.UserDatabase.GetUserRecord", `{"uid":656360,"service":"io.systemd.Machine"}`}
		if more {
			args = append(args, "--more")
		}
		o, errOut, code := varlinkctl(t, args...)
		if code != 0 || !strings.Contains(o, `"userName":"vu-ns1-1000"`) {
			t.Errorf("varlinkctl more=%v: %d %s %s", more, code, o, errOut)
		}
	}

	// Leader death: the names go at once.
	ns.kill()
	eventually(t, "vu-ns1-0 stops resolving", func() bool { _, ok := getent(t, "passwd", "vu-ns1-0"); return !ok })
	if _, ok := getent(t, "passwd", "655360"); ok {
		t.Error("uid of a dead machine still resolves")
	}
}

func TestUserdbNegative(t *testing.T) {
	d := startUserdbDaemon(t)
	plain := spawnLeader(t)
	register(t, d, "plain", plain.pid)
	dotted := spawnUserNSLeader(t, 1310720)
	register(t, d, "a.b", dotted.pid)
	long := spawnUserNSLeader(t, 1966080)
	register(t, d, "averyveryverylongmachinename", long.pid)
	cm := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 2621440, Size: 1000}, {ContainerID: 1000, HostID: 3000000, Size: 64536}}
	complexLeader := spawnLeaderWith(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: cm, GidMappings: cm})
	register(t, d, "multi", complexLeader.pid)
	unreg := spawnUserNSLeader(t, 3276800)
	register(t, d, "gone", unreg.pid)
	unregister(t, d, "gone")

	for _, key := range []string{
		"60000",               // below 65536: the host's
		"vu-plain-0",          // no user namespace: would be host uid 0 upstream
		"vu-a.b-0", "1310720", // a '.' in the machine name
		"vu-averyveryverylongmachinename-0", "1966080", // too long for a user name
		"vu-gone-0", "3276800", // unregistered
		"vu-ns1-65536", // out of range
	} {
		if got, ok := getent(t, "passwd", key); ok {
			t.Errorf("getent passwd %s resolved: %q", key, got)
		}
	}
	// A complex map is still resolved line by line.
	if got, ok := getent(t, "passwd", "3000005"); !ok || !strings.HasPrefix(got, "vu-multi-1005:") {
		t.Errorf("complex map: %q", got)
	}
	// Protocol edges through varlinkctl.
	sock := filepath.Join(nssUserdbDir, "io.systemd.Machine")
	for _, tc := range []struct{ method, params, want string }{
		{"GetUserRecord", `{"uid":655360,"service":"io.systemd.Nope"}`, "io.systemd.UserDatabase.BadService"},
		{"GetUserRecord", `{"service":"io.systemd.Machine"}`, "io.systemd.UserDatabase.EnumerationNotSupported"},
		{"GetUserRecord", `{"uid":3000005,"userName":"vu-multi-0","service":"io.systemd.Machine"}`, "io.systemd.UserDatabase.ConflictingRecordFound"},
		{"GetUserRecord", `{"uid":3000005,"uidMax":70000,"service":"io.systemd.Machine"}`, "io.systemd.UserDatabase.NonMatchingRecordFound"},
		{"GetUserRecord", `{"uid":"x","service":"io.systemd.Machine"}`, "org.varlink.service.InvalidParameter"},
		{"GetMemberships", `{"service":"io.systemd.Machine"}`, "io.systemd.UserDatabase.NoRecordFound"},
	} {
		_, errOut, code := varlinkctl(t, "call", sock, "io.systemd.UserDatabase."+tc.method, tc.params)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s %s: %d %q, want %s", tc.method, tc.params, code, errOut, tc.want)
		}
	}
	// Filters newer clients send are honoured, not refused.
	o, errOut, code := varlinkctl(t, "call", sock, "io.systemd.UserDatabase.GetUserRecord", `{"uid":3000005,"uidMin":65536,"dispositionMask":["container"],"service":"io.systemd.Machine"}`)
	if code != 0 || !strings.Contains(o, "vu-multi-1005") {
		t.Errorf("filtered lookup: %d %s %s", code, o, errOut)
	}
	// GetInfo on the userdb socket lists only its own interface.
	o, _, _ = varlinkctl(t, "info", sock)
	if !strings.Contains(o, "io.systemd.UserDatabase") || strings.Contains(o, "io.systemd.Machine\n") {
		t.Errorf("userdb GetInfo: %s", o)
	}
}
