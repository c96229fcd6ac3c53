package tests

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/machined-go/machined/client"
	"golang.org/x/sys/unix"
)

// Every validation rule answers with the named error, seen through varlinkctl.
func TestBadInputVarlinkctl(t *testing.T) {
	needRoot(t)
	d := startDaemon(t)
	l := spawnLeader(t)
	reg := func(extra string) string {
		return fmt.Sprintf(`{"class":"container","leader":%d%s}`, l.pid, extra)
	}
	registerReq(t, d, client.RegisterRequest{Name: "vmx", LeaderPID: spawnLeader(t).pid, Class: client.ClassVM})
	cases := []struct {
		desc, method, params, wantErr, wantParam string
	}{
		{"underscore name", "Register", reg(`,"name":"a_b"`), "org.varlink.service.InvalidParameter", "name"},
		{"empty name", "Register", reg(`,"name":""`), "org.varlink.service.InvalidParameter", "name"},
		{".host", "Register", reg(`,"name":".host"`), "org.varlink.service.InvalidParameter", "name"},
		{"long name", "Register", reg(`,"name":"` + strings.Repeat("a", 65) + `"`), "org.varlink.service.InvalidParameter", "name"},
		{"missing name", "Register", reg(``), "org.varlink.service.InvalidParameter", "name"},
		{"missing class", "Register", fmt.Sprintf(`{"name":"x","leader":%d}`, l.pid), "org.varlink.service.InvalidParameter", "class"},
		{"bogus class", "Register", fmt.Sprintf(`{"name":"x","class":"pod","leader":%d}`, l.pid), "org.varlink.service.InvalidParameter", "class"},
		{"host class", "Register", fmt.Sprintf(`{"name":"x","class":"host","leader":%d}`, l.pid), "org.varlink.service.InvalidParameter", "class"},
		{"leader 1", "Register", `{"name":"x","class":"container","leader":1}`, "org.varlink.service.InvalidParameter", "leader"},
		{"no such leader", "Register", `{"name":"x","class":"container","leader":2147480000}`, "org.varlink.service.InvalidParameter", "leader"},
		{"bad id", "Register", reg(`,"name":"x","id":"zz"`), "org.varlink.service.InvalidParameter", "id"},
		{"relative root", "Register", reg(`,"name":"x","rootDirectory":"var/lib"`), "org.varlink.service.InvalidParameter", "rootDirectory"},
		{"ifindex 0", "Register", reg(`,"name":"x","ifIndices":[0]`), "org.varlink.service.InvalidParameter", "ifIndices"},
		{"vsock host cid", "Register", reg(`,"name":"x","vSockCid":2`), "org.varlink.service.InvalidParameter", "vSockCid"},
		{"relative key path", "Register", reg(`,"name":"x","sshPrivateKeyPath":"id"`), "org.varlink.service.InvalidParameter", "sshPrivateKeyPath"},
		{"unknown field", "Register", reg(`,"name":"x","color":"red"`), "org.varlink.service.InvalidParameter", "color"},
		{"wrong case field", "Register", reg(`,"Name":"x"`), "org.varlink.service.InvalidParameter", "Name"},
		{"wrong type", "Register", reg(`,"name":5`), "org.varlink.service.InvalidParameter", "name"},
		{"pidfdId mismatch", "Register", fmt.Sprintf(`{"name":"x","class":"container","leaderProcessId":{"pid":%d,"pidfdId":1}}`, l.pid), "org.varlink.service.InvalidParameter", "leader"},
		{"leader disagrees", "Register", fmt.Sprintf(`{"name":"x","class":"container","leader":%d,"leaderProcessId":{"pid":%d}}`, l.pid, os.Getpid()), "org.varlink.service.InvalidParameter", "leaderProcessId"},
		{"List without more", "List", `{}`, "org.varlink.service.ExpectedMore", ""},
		{"List unknown", "List", `{"name":"nope"}`, "io.systemd.Machine.NoSuchMachine", ""},
		{"List bad name", "List", `{"name":"a_b"}`, "org.varlink.service.InvalidParameter", "name"},
		{"bad acquireMetadata", "List", `{"name":".host","acquireMetadata":"maybe"}`, "org.varlink.service.InvalidParameter", "acquireMetadata"},
		{"Unregister nothing", "Unregister", `{}`, "io.systemd.Machine.NoSuchMachine", ""},
		{"Kill signal 0", "Kill", `{"name":"x","signal":0}`, "org.varlink.service.InvalidParameter", "signal"},
		{"Kill signal 99", "Kill", `{"name":"x","signal":99}`, "org.varlink.service.InvalidParameter", "signal"},
		{"Kill no signal", "Kill", `{"name":"x"}`, "org.varlink.service.InvalidParameter", "signal"},
		{"Kill bad whom", "Kill", `{"name":"x","whom":"bogus","signal":15}`, "org.varlink.service.InvalidParameter", "whom"},
		{"Terminate host", "Terminate", `{"name":".host"}`, "io.systemd.Machine.NotSupported", ""},
		{"MapTo host range", "MapTo", `{"uid":1000}`, "io.systemd.Machine.UserInHostRange", ""},
		{"MapTo group host range", "MapTo", `{"gid":10}`, "io.systemd.Machine.GroupInHostRange", ""},
		{"MapTo unmapped", "MapTo", `{"uid":3000000000}`, "io.systemd.Machine.NoSuchUser", ""},
		{"MapFrom host", "MapFrom", `{"name":".host","uid":0}`, "io.systemd.Machine.NotSupported", ""},
		{"MapFrom vm", "MapFrom", `{"name":"vmx","uid":0}`, "io.systemd.Machine.NotSupported", ""},
		{"metadata of a vm", "List", `{"name":"vmx","acquireMetadata":"yes"}`, "io.systemd.Machine.NotAvailable", ""},
		{"Open vm", "Open", `{"name":"vmx","mode":"tty"}`, "io.systemd.Machine.NotSupported", ""},
		{"OpenRootDirectory vm", "OpenRootDirectory", `{"name":"vmx"}`, "io.systemd.Machine.NotSupported", ""},
		{"Open bad mode", "Open", `{"name":".host","mode":"bogus"}`, "org.varlink.service.InvalidParameter", "mode"},
		{"Open no mode", "Open", `{"name":".host"}`, "org.varlink.service.InvalidParameter", "mode"},
		{"Open relative path", "Open", `{"name":".host","mode":"shell","path":"bin/sh"}`, "org.varlink.service.InvalidParameter", "path"},
		{"Open bad user", "Open", `{"name":".host","mode":"shell","user":"a:b"}`, "org.varlink.service.InvalidParameter", "user"},
		{"Open bad environment", "Open", `{"name":".host","mode":"shell","environment":["NOEQUALS"]}`, "org.varlink.service.InvalidParameter", "environment"},
		{"Open unknown machine", "Open", `{"name":"nope","mode":"tty"}`, "io.systemd.Machine.NoSuchMachine", ""},
		{"unknown method", "Nope", `{}`, "org.varlink.service.MethodNotFound", ""},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			out, errOut, code := varlinkctl(t, "call", "-j", d.sock(), "io.systemd.Machine."+tc.method, tc.params)
			if code == 0 {
				t.Fatalf("succeeded: %s", out)
			}
			if !strings.Contains(errOut, tc.wantErr) {
				t.Fatalf("got %q %s, want %s", strings.TrimSpace(errOut), out, tc.wantErr)
			}
			if tc.wantParam != "" && !strings.Contains(out, fmt.Sprintf(`"parameter":"%s"`, tc.wantParam)) {
				t.Fatalf("parameter: got %s, want %s", out, tc.wantParam)
			}
		})
	}
	// Nothing of the above registered anything.
	if !gone(t, d, "x") {
		t.Error("a refused registration left a machine behind")
	}
	// MethodNotFound carries the full method name, for unknown interfaces too.
	out, _, _ := varlinkctl(t, "call", "-j", d.sock(), "io.systemd.Nope.Foo", "{}")
	if !strings.Contains(out, `"io.systemd.Nope.Foo"`) {
		t.Errorf("MethodNotFound parameters: %s", out)
	}
}

// A duplicate name or a reused leader is refused and the existing machine is untouched.
func TestDuplicatesRefused(t *testing.T) {
	needRoot(t)
	d := startDaemon(t)
	a, b := spawnLeader(t), spawnLeader(t)
	register(t, d, "first", a.pid)
	c := dialClient(t, d)
	err := c.Register(context.Background(), client.RegisterRequest{Name: "first", Class: client.ClassContainer, LeaderPID: b.pid})
	wantReply(t, err, "io.systemd.Machine.MachineExists")
	err = c.Register(context.Background(), client.RegisterRequest{Name: "second", Class: client.ClassContainer, LeaderPID: a.pid})
	wantInvalidReply(t, err, "leader")
	m, err := getOne(t, d, "first")
	if err != nil {
		t.Fatalf("existing machine disturbed: %v", err)
	}
	if m.Leader == nil || m.Leader.PID != a.pid {
		t.Errorf("existing machine's leader changed: %+v", m.Leader)
	}
	if a.cmd.ProcessState != nil || syscall.Kill(a.pid, 0) != nil {
		t.Error("the existing machine's leader was harmed")
	}
	if !gone(t, d, "second") {
		t.Error("second machine registered with a taken leader")
	}
}

// Malformed JSON gets io.systemd.Protocol and the connection goes on.
func TestMalformedJSON(t *testing.T) {
	needRoot(t)
	d := startDaemon(t)
	c := rawConn(t, d)
	for _, bad := range []string{`{"method":`, `[]`, `{"parameters":{}}`, "\xff\xfe"} {
		c.Write([]byte(bad + "\x00"))
		m, err := readReply(t, c)
		if err != nil {
			t.Fatalf("%q: no reply: %v", bad, err)
		}
		if m["error"] != "io.systemd.Protocol" {
			t.Errorf("%q: reply %v", bad, m)
		}
	}
	c.Write([]byte(`{"method":"org.varlink.service.GetInfo","parameters":{}}` + "\x00"))
	m, err := readReply(t, c)
	if err != nil || m["error"] != nil {
		t.Fatalf("connection unusable after malformed input: %v %v", m, err)
	}
}

// An oversized message is refused, its connection closed, and others are served.
func TestOversizedMessage(t *testing.T) {
	needRoot(t)
	d := startDaemon(t)
	c := rawConn(t, d)
	chunk := []byte(`{"method":"io.systemd.Machine.List","parameters":{"name":"` + strings.Repeat("a", 1<<20))
	done := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < 17 && err == nil; i++ {
			_, err = c.Write(chunk)
			chunk = []byte(strings.Repeat("b", 1<<20))
		}
		done <- err
	}()
	m, err := readReply(t, c)
	if err == nil && m["error"] != "io.systemd.Protocol" {
		t.Errorf("reply to an oversized message: %v", m)
	}
	<-done
	// The connection is closed: a further read ends.
	buf := make([]byte, 64)
	for {
		if _, err := c.Read(buf); err != nil {
			break
		}
	}
	if err := d.getInfo(); err != nil {
		t.Fatalf("daemon not serving after oversized message: %v", err)
	}
}

// fds sent without a complete message are refused, and none stay open in the daemon.
func TestFDFlood(t *testing.T) {
	needRoot(t)
	d := startDaemon(t)
	base := countFDs(t, d.pid())
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fds := make([]int, 100)
	for i := range fds {
		fds[i] = int(f.Fd())
	}
	for round := 0; round < 5; round++ {
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: d.sock(), Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 4; i++ {
			if _, _, err := c.WriteMsgUnix([]byte("{"), unix.UnixRights(fds[:25]...), nil); err != nil {
				break
			}
		}
		buf := make([]byte, 256)
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
		}
		c.Close()
	}
	eventually(t, "daemon fd count back to baseline", func() bool { return countFDs(t, d.pid()) <= base+2 })
	if err := d.getInfo(); err != nil {
		t.Fatalf("daemon not serving after fd flood: %v", err)
	}
}

func countFDs(t *testing.T, pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
