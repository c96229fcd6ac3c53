package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/machined-go/machined/client"
)

// waitExec waits until pid has exec'd name (its setup is done).
func waitExec(t *testing.T, pid int, name string) {
	t.Helper()
	eventually(t, fmt.Sprintf("pid %d runs %s", pid, name), func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		return strings.TrimSpace(string(b)) == name
	})
}

// startAs starts a shell script as cred in its own session; it is killed at cleanup.
func startAs(t *testing.T, cred *syscall.Credential, script string, args ...string) int {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"-c", script, "sh"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: cred}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

func registerAs(t *testing.T, d *daemon, cred *syscall.Credential, params string) (string, string, int) {
	t.Helper()
	return varlinkctlAs(t, cred, "call", "-j", d.sock(), "io.systemd.Machine.Register", params)
}

// Item: a machine's os-release is read with its owner's rights. nobody
// bind-mounts a root-only file over /etc/os-release in its own user and mount
// namespace and registers that leader: no byte of the file comes back, to
// nobody or to root; a root-owned container's os-release still reads.
func TestOSReleaseReadAsOwner(t *testing.T) {
	needRoot(t)
	if out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "unshare", "-Urmn", "true").CombinedOutput(); err != nil {
		t.Skipf("unprivileged user namespaces unavailable: %v %s", err, out)
	}
	d := startDaemon(t)
	dir, err := os.MkdirTemp("/tmp", "root-only-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// 0711: nobody can name the file for its bind mount, not list or read it.
	os.Chmod(dir, 0o711)
	secret := filepath.Join(dir, "secret.env")
	if err := os.WriteFile(secret, []byte("API_TOKEN=s3cr3t-do-not-leak\nDB_PASSWORD=hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pid := startAs(t, nobody, `exec unshare -Urmn sh -c 'mount --bind "$0" /etc/os-release && exec sleep 100000' "$1"`, secret)
	waitExec(t, pid, "sleep")
	if out, errOut, code := registerAs(t, d, nobody, fmt.Sprintf(`{"name":"sneaky","class":"container","leader":%d}`, pid)); code != 0 {
		t.Fatalf("Register as nobody: exit %d %s %s", code, out, errOut)
	}

	leaks := func(s string) bool { return strings.Contains(s, "s3cr3t") || strings.Contains(s, "hunter2") }
	for _, cred := range []*syscall.Credential{nobody, nil} {
		out, errOut, code := varlinkctlAs(t, cred, "call", "-j", d.sock(), "io.systemd.Machine.List", `{"name":"sneaky","acquireMetadata":"graceful"}`)
		if code != 0 || leaks(out+errOut) || strings.Contains(out, "OSRelease") {
			t.Errorf("List graceful as %v: exit %d, out %s %s; want no OSRelease", cred, code, out, errOut)
		}
		// Its own network namespace (empty) makes os-release the one failure.
		out, errOut, code = varlinkctlAs(t, cred, "call", "-j", d.sock(), "io.systemd.Machine.List", `{"name":"sneaky","acquireMetadata":"yes"}`)
		if code == 0 || leaks(out+errOut) || !strings.Contains(out+errOut, "EACCES") {
			t.Errorf("List yes as %v: exit %d, out %s %s; want io.systemd.System EACCES", cred, code, out, errOut)
		}
	}

	l := spawnLeader(t)
	register(t, d, "rootbox", l.pid)
	out, errOut, code := varlinkctl(t, "call", "-j", d.sock(), "io.systemd.Machine.List", `{"name":"rootbox","acquireMetadata":"graceful"}`)
	if code != 0 || !strings.Contains(out, `"OSRelease"`) || !strings.Contains(out, "ID=") {
		t.Errorf("root-owned container's os-release: exit %d %s %s", code, out, errOut)
	}
}

// Item: an unprivileged uid holds at most --max-machines-per-uid machines; the
// next is refused with a named error on both transports, and root is not capped.
func TestMachinesPerUIDCapVarlink(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "--max-machines-per-uid", "3")
	for i := range 3 {
		pid := startAs(t, nobody, "exec sleep 100000")
		if out, errOut, code := registerAs(t, d, nobody, fmt.Sprintf(`{"name":"cap%d","class":"container","leader":%d}`, i, pid)); code != 0 {
			t.Fatalf("machine %d of 3: exit %d %s %s", i+1, code, out, errOut)
		}
	}
	pid := startAs(t, nobody, "exec sleep 100000")
	out, errOut, code := registerAs(t, d, nobody, fmt.Sprintf(`{"name":"cap3","class":"container","leader":%d}`, pid))
	if code == 0 || !strings.Contains(out+errOut, "io.systemd.System") || !strings.Contains(out+errOut, "ENOBUFS") {
		t.Errorf("machine 4 of 3: exit %d %s %s; want io.systemd.System ENOBUFS", code, out, errOut)
	}
	if !gone(t, d, "cap3") {
		t.Error("the refused machine is registered")
	}
	for i := range 4 {
		register(t, d, fmt.Sprintf("root%d", i), spawnLeader(t).pid)
	}
}

func TestMachinesPerUIDCapDBus(t *testing.T) {
	_, bus := startBusDaemon(t, "--units", "none", "--max-machines-per-uid", "1")
	first := startAs(t, nobody, "exec sleep 100000")
	if out, errOut, code := busctl(t, bus, nobody, "call", m1Dest, m1Path, m1Manager, "RegisterMachine", "sayssus", "dcap0", "0", "", "container", strconv.Itoa(first), ""); code != 0 {
		t.Fatalf("first machine: exit %d %s %s", code, out, errOut)
	}
	second := startAs(t, nobody, "exec sleep 100000")
	out, errOut, code := busctl(t, bus, nobody, "call", m1Dest, m1Path, m1Manager, "RegisterMachine", "sayssus", "dcap1", "0", "", "container", strconv.Itoa(second), "")
	if code == 0 || !strings.Contains(errOut, "more than 1 machines") {
		t.Errorf("second machine: exit %d %s %s; want the limit named", code, out, errOut)
	}
	c := dbusConn(t, bus)
	if err := managerCall(t, c, "RegisterMachine", "dcap2", []byte{}, "", "container", uint32(spawnLeader(t).pid), "").Store(new(dbus.ObjectPath)); err != nil {
		t.Errorf("root: %v", err)
	}
	// Root is not capped, not even with a leader of the capped user.
	if err := managerCall(t, c, "RegisterMachine", "dcap3", []byte{}, "", "container", uint32(second), "").Err; err != nil {
		t.Errorf("root registering nobody's leader: %v", err)
	}
}

// Item: every list is bounded, while decoding on Varlink and in the core for
// both transports; a path with ".." is refused.
func TestRequestBoundsVarlink(t *testing.T) {
	d := startDaemon(t)
	l := spawnLeader(t)
	ifs := make([]int, 257)
	for i := range ifs {
		ifs[i] = i + 1
	}
	cl := dialClient(t, d)
	ctx := context.Background()
	err := cl.Register(ctx, client.RegisterRequest{Name: "many", Class: client.ClassContainer, LeaderPID: l.pid, IfIndices: ifs})
	wantInvalidReply(t, err, "ifIndices")
	if err := cl.Register(ctx, client.RegisterRequest{Name: "many", Class: client.ClassContainer, LeaderPID: l.pid, IfIndices: ifs[:256]}); err != nil {
		t.Fatalf("256 interfaces: %v", err)
	}
	unregister(t, d, "many")

	// A message-sized array of small numbers, on a raw connection.
	c := rawConn(t, d)
	huge := `{"method":"io.systemd.Machine.Register","parameters":{"name":"huge","class":"container","leader":` + strconv.Itoa(l.pid) + `,"ifIndices":[` + strings.TrimSuffix(strings.Repeat("1,", 7<<20), ",") + `]}}` + "\x00"
	if _, err := c.Write([]byte(huge)); err != nil {
		t.Fatal(err)
	}
	reply, err := readReply(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(reply); !strings.Contains(string(b), "InvalidParameter") || !strings.Contains(string(b), "ifIndices") {
		t.Errorf("7 Mi interfaces: %s", b)
	}

	for _, tc := range []struct {
		req   client.RegisterRequest
		field string
	}{
		{client.RegisterRequest{RootDirectory: "/var/lib/machines/../../etc"}, "rootDirectory"},
		{client.RegisterRequest{SSHPrivateKeyPath: "/run/../root/.ssh/id_ed25519", SSHAddress: "vsock/3"}, "sshPrivateKeyPath"},
	} {
		tc.req.Name, tc.req.Class, tc.req.LeaderPID = "dots", client.ClassContainer, l.pid
		wantInvalidReply(t, cl.Register(ctx, tc.req), tc.field)
	}
	// Open's lists are bounded too, before the machine is looked up.
	args := make([]string, 1025)
	for i := range args {
		args[i] = "x"
	}
	_, _, err = cl.Open(ctx, client.ByName(".host"), client.OpenRequest{Mode: client.OpenShell, Args: args})
	wantInvalidReply(t, err, "args")
	_, _, err = cl.Open(ctx, client.ByName(".host"), client.OpenRequest{Mode: client.OpenShell, Environment: args})
	wantInvalidReply(t, err, "environment")
	if _, _, code := varlinkctl(t, "call", d.sock(), "io.systemd.Machine.List", `{"name":"many"}`); code == 0 {
		t.Error("a refused machine is registered")
	}
}

func TestRequestBoundsDBus(t *testing.T) {
	_, bus := startBusDaemon(t, "--units", "none")
	l := spawnLeader(t)
	ifs := make([]string, 257)
	for i := range ifs {
		ifs[i] = strconv.Itoa(i + 1)
	}
	args := append([]string{"call", m1Dest, m1Path, m1Manager, "RegisterMachineWithNetwork", "sayssusai", "many", "0", "", "container", strconv.Itoa(l.pid), "", "257"}, ifs...)
	out, errOut, code := busctl(t, bus, nil, args...)
	if code == 0 || !strings.Contains(errOut, "256 network interfaces") {
		t.Errorf("257 interfaces: exit %d %s %s", code, out, errOut)
	}
	out, errOut, code = busctl(t, bus, nil, "call", m1Dest, m1Path, m1Manager, "RegisterMachine", "sayssus", "dots", "0", "", "container", strconv.Itoa(l.pid), "/var/lib/machines/../../etc")
	if code == 0 || !strings.Contains(errOut, "'..'") {
		t.Errorf("root directory with '..': exit %d %s %s", code, out, errOut)
	}
	c := dbusConn(t, bus)
	props := make([]struct {
		Name  string
		Value dbus.Variant
	}, 65)
	for i := range props {
		props[i].Name, props[i].Value = "Description", dbus.MakeVariant("x")
	}
	err := managerCall(t, c, "CreateMachine", "scoped", []byte{}, "", "container", uint32(l.pid), "", props).Err
	if dbusErrorName(err) != "org.freedesktop.DBus.Error.InvalidArgs" || !strings.Contains(err.Error(), "64 scope properties") {
		t.Errorf("65 scope properties: %v", err)
	}
}

// Item: 65535 and 4294967295 are never mapped or synthesized. A container
// mapping inner 0..65535 has no user or group for its inner 65535, through
// glibc, userdbctl and varlinkctl, and MapFrom/MapTo refuse the invalid ids.
func TestInvalidIDsUserdb(t *testing.T) {
	d := startUserdbDaemon(t)
	ns := spawnUserNSLeader(t, 655360)
	register(t, d, "ids", ns.pid)
	const inner65535 = "720895" // 655360 + 65535
	if got, ok := getent(t, "passwd", "vu-ids-65534"); !ok || !strings.HasPrefix(got, "vu-ids-65534:x:720894:") {
		t.Fatalf("getent passwd vu-ids-65534 = %q (the control case)", got)
	}
	for _, key := range []string{inner65535, "vu-ids-65535"} {
		if got, ok := getent(t, "passwd", key); ok {
			t.Errorf("getent passwd %s = %q, want nothing", key, got)
		}
	}
	for _, key := range []string{inner65535, "vg-ids-65535"} {
		if got, ok := getent(t, "group", key); ok {
			t.Errorf("getent group %s = %q, want nothing", key, got)
		}
	}
	if out, err := exec.Command("userdbctl", "user", inner65535).CombinedOutput(); err == nil {
		t.Errorf("userdbctl user %s: %s", inner65535, out)
	}
	sock := filepath.Join(nssUserdbDir, "io.systemd.Machine")
	if out, _, code := varlinkctl(t, "call", sock, "io.systemd.UserDatabase.GetUserRecord", `{"uid":`+inner65535+`,"service":"io.systemd.Machine"}`); code == 0 {
		t.Errorf("GetUserRecord uid %s: %s", inner65535, out)
	}

	cl := dialClient(t, d)
	ctx := context.Background()
	_, _, err := cl.MapTo(ctx, client.UserID(720895))
	wantReply(t, err, "io.systemd.Machine.NoSuchUser")
	_, _, err = cl.MapTo(ctx, client.GroupID(720895))
	wantReply(t, err, "io.systemd.Machine.NoSuchGroup")
	for _, id := range []uint32{65535, 4294967295} {
		_, _, err = cl.MapTo(ctx, client.UserID(id))
		wantInvalidReply(t, err, "uid")
		_, _, err = cl.MapTo(ctx, client.GroupID(id))
		wantInvalidReply(t, err, "gid")
		_, err = cl.MapFrom(ctx, client.ByName("ids"), client.UserID(id))
		wantInvalidReply(t, err, "uid")
		_, err = cl.MapFrom(ctx, client.ByName("ids"), client.GroupID(id))
		wantInvalidReply(t, err, "gid")
	}
	if out, errOut, code := varlinkctl(t, "call", d.sock(), "io.systemd.Machine.MapFrom", `{"name":"ids","uid":65535}`); code == 0 || !strings.Contains(out+errOut, "InvalidParameter") {
		t.Errorf("varlinkctl MapFrom uid 65535: exit %d %s %s", code, out, errOut)
	}
}

func TestInvalidIDsDBus(t *testing.T) {
	d, bus := startBusDaemon(t, "--units", "none")
	ns := spawnUserNSLeader(t, 655360)
	register(t, d, "ids", ns.pid)
	for _, id := range []string{"65535", "4294967295"} {
		for _, call := range [][]string{
			{"MapFromMachineUser", "su", "ids", id},
			{"MapFromMachineGroup", "su", "ids", id},
			{"MapToMachineUser", "u", id},
			{"MapToMachineGroup", "u", id},
		} {
			out, errOut, code := busctl(t, bus, nil, append([]string{"call", m1Dest, m1Path, m1Manager}, call...)...)
			if code == 0 || !strings.Contains(errOut, "Invalid user ID") && !strings.Contains(errOut, "Invalid group ID") {
				t.Errorf("%v: exit %d %s %s", call, code, out, errOut)
			}
		}
	}
	c := dbusConn(t, bus)
	err := managerCall(t, c, "MapToMachineUser", uint32(720895)).Err
	if dbusErrorName(err) != "org.freedesktop.machine1.NoSuchUserMapping" {
		t.Errorf("MapToMachineUser of inner 65535: %v", err)
	}
	err = managerCall(t, c, "MapFromMachineUser", "ids", uint32(65535)).Err
	if dbusErrorName(err) != "org.freedesktop.DBus.Error.InvalidArgs" {
		t.Errorf("MapFromMachineUser 65535: %v", err)
	}
}

// Item: a container with its own network namespace is reached at its own
// address: loopback addresses are not listed, IPv4 comes first, and
// nss-mymachines answers the container's address, not ::1.
func TestAddressesWithoutLoopback(t *testing.T) {
	d, bus := startBusDaemon(t, "--units", "none")
	if !nssHasMymachines() {
		t.Fatal("nss-mymachines is not in the hosts: line of /etc/nsswitch.conf: install libnss-mymachines (`make deps`)")
	}
	pid := startAs(t, nil, "exec unshare -n sh -c 'ip link set lo up && ip addr add 10.213.8.2/24 dev lo && exec sleep 100000'")
	waitExec(t, pid, "sleep")
	c := dbusConn(t, bus)
	if err := managerCall(t, c, "RegisterMachine", "lobox", []byte{}, "test", "container", uint32(pid), "").Store(new(dbus.ObjectPath)); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := varlinkctl(t, "call", "-j", d.sock(), "io.systemd.Machine.List", `{"name":"lobox","acquireMetadata":"yes"}`)
	if code != 0 || !strings.Contains(out, "[10,213,8,2]") || strings.Contains(out, "[127,0,0,1]") || strings.Contains(out, "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1]") {
		t.Errorf("List addresses: exit %d %s %s", code, out, errOut)
	}
	var addrs []struct {
		Family int32
		Addr   []byte
	}
	if err := managerCall(t, c, "GetMachineAddresses", "lobox").Store(&addrs); err != nil || len(addrs) != 1 {
		t.Errorf("GetMachineAddresses: %v %v, want 10.213.8.2 alone", addrs, err)
	}
	out, errOut, code = inSystemdNS(t, d, bus, -1, "getent", "hosts", "lobox")
	if code != 0 || !strings.HasPrefix(out, "10.213.8.2") {
		t.Errorf("getent hosts lobox: exit %d %q %s", code, out, errOut)
	}
}

// Item: the userdb filter lists are bounded while decoding.
func TestUserdbFilterBounds(t *testing.T) {
	d := startDaemon(t)
	sock := d.userdbSock()
	names := func(n int) string {
		b, _ := json.Marshal(make([]string, n))
		return string(b)
	}
	for _, field := range []string{"fuzzyNames", "dispositionMask"} {
		out, errOut, code := varlinkctl(t, "call", sock, "io.systemd.UserDatabase.GetUserRecord", `{"service":"io.systemd.Machine","uid":70000,"`+field+`":`+names(65)+`}`)
		if code == 0 || !strings.Contains(out+errOut, "InvalidParameter") || !strings.Contains(out+errOut, field) {
			t.Errorf("65 %s: exit %d %s %s", field, code, out, errOut)
		}
		out, errOut, _ = varlinkctl(t, "call", sock, "io.systemd.UserDatabase.GetUserRecord", `{"service":"io.systemd.Machine","uid":70000,"`+field+`":`+names(64)+`}`)
		if !strings.Contains(out+errOut, "NoRecordFound") {
			t.Errorf("64 %s: %s %s, want NoRecordFound", field, out, errOut)
		}
	}
}
