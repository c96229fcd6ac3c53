package machine1

import (
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/dbusshim/busconn"
	"github.com/machined-go/machined/internal/bustest"
	"github.com/machined-go/machined/service"
)

type env struct {
	t      *testing.T
	mgr    *service.Manager
	srv    *Server
	level  *slog.LevelVar
	client *dbus.Conn
	sigs   chan *dbus.Signal
	addr   string // the private bus
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvUnits(t, nil)
}

// newEnvUnits is newEnv with a unit back end for the core.
func newEnvUnits(t *testing.T, units service.Units) *env {
	t.Helper()
	return newEnvConfig(t, service.Config{HostMachine: true, Units: units})
}

// newEnvConfig is newEnv with a core made from cfg (its state directory and
// logger filled in).
func newEnvConfig(t *testing.T, cfg service.Config) *env {
	t.Helper()
	bus := bustest.Start(t, "")
	cfg.StateDir, cfg.Logger = filepath.Join(t.TempDir(), "machines"), slog.New(slog.DiscardHandler)
	mgr, err := service.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	level := new(slog.LevelVar)
	srv := New(Config{LogLevel: level, SyslogIdentifier: "machined-test"})
	conn, err := busconn.Dial(bus.Address, busconn.Config{AcceptFDs: AcceptFDs, Calls: srv})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background(), conn, mgr); err != nil {
		t.Fatal(err)
	}
	client, err := dbus.Connect(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, mgr: mgr, srv: srv, level: level, client: client, sigs: make(chan *dbus.Signal, 64), addr: bus.Address}
	t.Cleanup(func() {
		client.Close()
		srv.Close()
		conn.Close()
		mgr.Close()
	})
	if err := client.AddMatchSignal(dbus.WithMatchSender(BusName), dbus.WithMatchObjectPath(managerPath), dbus.WithMatchInterface(managerIface)); err != nil {
		t.Fatal(err)
	}
	client.Signal(e.sigs)
	return e
}

func (e *env) obj(path dbus.ObjectPath) dbus.BusObject { return e.client.Object(BusName, path) }

func (e *env) call(path dbus.ObjectPath, method string, args ...any) *dbus.Call {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return e.obj(path).CallWithContext(ctx, method, 0, args...)
}

func (e *env) manager(method string, args ...any) *dbus.Call {
	return e.call(managerPath, managerIface+"."+method, args...)
}

// wantErr checks a call failed with name (and, if given, a message containing msg).
func wantErr(t *testing.T, c *dbus.Call, name, msg string) {
	t.Helper()
	var de dbus.Error
	if !errors.As(c.Err, &de) {
		t.Fatalf("want %s, got %v", name, c.Err)
	}
	if de.Name != name {
		t.Fatalf("error %s %v, want %s", de.Name, de.Body, name)
	}
	if msg != "" && !strings.Contains(de.Error(), msg) {
		t.Fatalf("error %s %q does not say %q", de.Name, de.Error(), msg)
	}
}

func (e *env) waitSignal(member, name string) {
	e.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case s := <-e.sigs:
			if s.Name == managerIface+"."+member && len(s.Body) == 2 && s.Body[0] == name {
				if s.Body[1] != MachinePath(name) {
					e.t.Fatalf("%s %s with path %v", member, name, s.Body[1])
				}
				return
			}
		case <-timeout:
			e.t.Fatalf("no %s signal for %s", member, name)
		}
	}
}

func sleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

var testID = []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01}

func TestRegisterInspectUnregister(t *testing.T) {
	e := newEnv(t)
	l := sleeper(t)
	var path dbus.ObjectPath
	if err := e.manager("RegisterMachine", "c-1", testID, "svc", "container", uint32(l.Process.Pid), "/srv/c").Store(&path); err != nil {
		t.Fatal(err)
	}
	if path != "/org/freedesktop/machine1/machine/c_2d1" {
		t.Fatalf("path %s", path)
	}
	e.waitSignal("MachineNew", "c-1")

	var got dbus.ObjectPath
	if err := e.manager("GetMachine", "c-1").Store(&got); err != nil || got != path {
		t.Fatalf("GetMachine: %s %v", got, err)
	}
	var props map[string]dbus.Variant
	if err := e.call(path, propertiesIface+".GetAll", machineIface).Store(&props); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"Name": "c-1", "Id": testID, "Service": "svc", "Class": "container", "Leader": uint32(l.Process.Pid),
		"RootDirectory": "/srv/c", "State": "running", "UID": uint32(os.Geteuid()), "VSockCID": ^uint32(0),
		"NetworkInterfaces": []int32{},
	}
	for k, v := range want {
		if got := props[k].Value(); !equalValue(got, v) {
			t.Errorf("%s = %#v, want %#v", k, got, v)
		}
	}
	if _, ok := props["Scope"]; ok {
		t.Error("hidden Scope in GetAll")
	}
	if len(props) != len(upstreamMachine)-15 { // all properties but the methods
		t.Errorf("GetAll returned %d properties", len(props))
	}
	var unit dbus.Variant
	if err := e.call(path, propertiesIface+".Get", machineIface, "Scope").Store(&unit); err != nil {
		t.Errorf("Get Scope: %v", err)
	}

	var list []machineEntry
	if err := e.manager("ListMachines").Store(&list); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(list, machineEntry{"c-1", "container", "svc", path}) ||
		!slices.Contains(list, machineEntry{".host", "host", "", "/org/freedesktop/machine1/machine/_2ehost"}) {
		t.Fatalf("ListMachines %+v", list)
	}

	wantErr(t, e.manager("RegisterMachine", "c-1", []byte{}, "", "container", uint32(sleeper(t).Process.Pid), ""), ErrMachineExists, "Machine 'c-1' already exists")

	var shift uint32
	if err := e.manager("GetMachineUIDShift", "c-1").Store(&shift); err != nil || shift != 0 {
		t.Errorf("GetMachineUIDShift: %d %v", shift, err)
	}
	var osr map[string]string
	if err := e.call(path, machineIface+".GetOSRelease").Store(&osr); err != nil || osr["ID"] == "" {
		t.Errorf("GetOSRelease: %v %v", osr, err)
	}
	wantErr(t, e.manager("GetMachineAddresses", "c-1"), ErrNoPrivateNetworking, "")

	if err := e.manager("UnregisterMachine", "c-1").Store(); err != nil {
		t.Fatal(err)
	}
	e.waitSignal("MachineRemoved", "c-1")
	wantErr(t, e.call(path, propertiesIface+".Get", machineIface, "Name"), ErrUnknownObject, "Unknown object '/org/freedesktop/machine1/machine/c_2d1'.")
	if l.ProcessState != nil {
		t.Error("unregister stopped the leader")
	}
}

func equalValue(a, b any) bool {
	switch a := a.(type) {
	case []byte:
		bb, ok := b.([]byte)
		return ok && slices.Equal(a, bb)
	case []int32:
		bb, ok := b.([]int32)
		return ok && slices.Equal(a, bb)
	}
	return a == b
}

// Machines registered without D-Bus (the Varlink front end calls the same
// core) are announced, and so is a leader's death.
func TestSignalsForOtherTransports(t *testing.T) {
	e := newEnv(t)
	l := sleeper(t)
	root := service.Caller{UID: 0, PIDFD: -1}
	if _, err := e.mgr.Register(context.Background(), root, service.RegisterRequest{Name: "vl", Class: "vm", Leader: l.Process.Pid}); err != nil {
		t.Fatal(err)
	}
	e.waitSignal("MachineNew", "vl")
	l.Process.Kill()
	e.waitSignal("MachineRemoved", "vl")
}

func TestKillAndTerminate(t *testing.T) {
	e := newEnv(t)
	l := sleeper(t)
	if err := e.manager("RegisterMachineWithNetwork", "k", []byte{}, "", "container", uint32(l.Process.Pid), "", []int32{1}).Store(new(dbus.ObjectPath)); err != nil {
		t.Fatal(err)
	}
	wantErr(t, e.manager("KillMachine", "k", "nobody", int32(9)), ErrInvalidArgs, "Invalid kill parameter")
	wantErr(t, e.manager("KillMachine", "k", "leader", int32(0)), ErrInvalidArgs, "Invalid signal 0")
	if err := e.call(MachinePath("k"), machineIface+".Kill", "leader", int32(9)).Store(); err != nil {
		t.Fatal(err)
	}
	e.waitSignal("MachineRemoved", "k")

	l2 := sleeper(t)
	if err := e.manager("RegisterMachine", "t", []byte{}, "", "container", uint32(l2.Process.Pid), "").Store(new(dbus.ObjectPath)); err != nil {
		t.Fatal(err)
	}
	if err := e.manager("TerminateMachine", "t").Store(); err != nil {
		t.Fatal(err)
	}
	e.waitSignal("MachineRemoved", "t")
	wantErr(t, e.manager("TerminateMachine", ".host"), ErrNotSupported, "")
	wantErr(t, e.manager("KillMachine", ".host", "all", int32(15)), ErrNotSupported, "")
}

func TestErrorsAndObjects(t *testing.T) {
	e := newEnv(t)
	wantErr(t, e.manager("GetMachine", "nope"), ErrNoSuchMachine, "No machine 'nope' known")
	wantErr(t, e.manager("GetMachine", uint32(1)), ErrInvalidArgs, "Invalid arguments 'u' to call org.freedesktop.machine1.Manager.GetMachine(), expecting 's'.")
	wantErr(t, e.manager("GetMachineByPID", uint32(os.Getpid())), ErrNoMachineForPID, "does not belong to any known machine")
	wantErr(t, e.manager("Frob"), ErrUnknownMethod, "Unknown method Frob or interface org.freedesktop.machine1.Manager.")
	wantErr(t, e.call("/nope", introspectIface+".Introspect"), ErrUnknownObject, "Unknown object '/nope'.")
	wantErr(t, e.call(MachinePath("ghost"), machineIface+".Terminate"), ErrUnknownObject, "")
	wantErr(t, e.call("/org/freedesktop/machine1/image/_2ehost", introspectIface+".Introspect"), ErrUnknownObject, "")
	wantErr(t, e.call(managerPath, propertiesIface+".Get", managerIface, "Nope"), ErrUnknownProperty, "")
	wantErr(t, e.call(managerPath, propertiesIface+".Set", managerIface, "PoolPath", dbus.MakeVariant("x")), ErrPropertyRO, "Property 'PoolPath' is not writable.")
	wantErr(t, e.call(managerPath, propertiesIface+".GetAll", "org.foo"), ErrUnknownIface, "")
	wantErr(t, e.manager("RegisterMachine", "a_b", []byte{}, "", "container", uint32(0), ""), ErrInvalidArgs, "")
	wantErr(t, e.manager("RegisterMachine", "ab", []byte{1, 2}, "", "container", uint32(0), ""), ErrInvalidArgs, "Invalid machine ID parameter")
	wantErr(t, e.manager("RegisterMachine", "ab", []byte{}, "", "toaster", uint32(0), ""), ErrInvalidArgs, "")
	wantErr(t, e.manager("RegisterMachine", "ab", []byte{}, "", "host", uint32(0), ""), ErrInvalidArgs, "Invalid machine class parameter")
	wantErr(t, e.manager("GetMachine", "bad/name"), ErrNoSuchMachine, "No machine 'bad/name' known")
	wantErr(t, e.manager("TerminateMachine", "bad/name"), ErrNoSuchMachine, "No machine 'bad/name' known")
	wantErr(t, e.manager("ListImages"), ErrNotSupported, "Image management is not enabled")
	wantErr(t, e.manager("GetImage", ".host"), ErrNotSupported, "Image management is not enabled")
	wantErr(t, e.manager("OpenMachinePTY", "nope"), ErrNoSuchMachine, "")
	var pty dbus.UnixFD
	var ptyPath string
	if err := e.manager("OpenMachinePTY", ".host").Store(&pty, &ptyPath); err != nil || !strings.HasPrefix(ptyPath, "/dev/pts/") {
		t.Errorf("OpenMachinePTY .host: %v %q", err, ptyPath)
	} else {
		unix.Close(int(pty))
	}
	wantErr(t, e.manager("CreateMachine", "ab", []byte{}, "", "container", uint32(sleeper(t).Process.Pid), "", []keyValue{}), ErrNotSupported, "")
	wantErr(t, e.manager("MapToMachineUser", uint32(1000)), ErrNoSuchUserMapping, "")
	wantErr(t, e.manager("GetMachineSSHInfo", ".host"), ErrFileNotFound, "")

	var pool map[string]dbus.Variant
	if err := e.call(managerPath, propertiesIface+".GetAll", managerIface).Store(&pool); err != nil {
		t.Fatal(err)
	}
	if pool["PoolPath"].Value() != "/var/lib/machines" || pool["PoolUsage"].Value() != ^uint64(0) {
		t.Errorf("pool properties %v", pool)
	}
	// No interface: the member is searched on the object's interfaces.
	var path dbus.ObjectPath
	if err := e.call(managerPath, "GetMachine", ".host").Store(&path); err != nil || path != MachinePath(".host") {
		t.Errorf("GetMachine without interface: %s %v", path, err)
	}

	// Introspection of the tree.
	for p, child := range map[dbus.ObjectPath]string{"/": "org", "/org": "freedesktop", "/org/freedesktop": "machine1", managerPath: "machine", machineNode: "_2ehost"} {
		var xml string
		if err := e.call(p, introspectIface+".Introspect").Store(&xml); err != nil {
			t.Fatalf("Introspect %s: %v", p, err)
		}
		if !strings.Contains(xml, `<node name="`+child+`"/>`) {
			t.Errorf("%s lacks child %s:\n%s", p, child, xml)
		}
	}
	var hostXML string
	if err := e.call(MachinePath(".host"), introspectIface+".Introspect").Store(&hostXML); err != nil || !strings.Contains(hostXML, machineIface) {
		t.Errorf(".host introspection: %v", err)
	}
	// Peer is answered on every path, known or not, as sd-bus does.
	for _, p := range []dbus.ObjectPath{managerPath, "/no/such/object"} {
		if err := e.call(p, peerIface+".Ping").Store(); err != nil {
			t.Errorf("Ping %s: %v", p, err)
		}
	}
	host, err := e.mgr.Get(service.Caller{PIDFD: -1}, service.Selector{Name: ".host"})
	if err != nil {
		t.Fatal(err)
	}
	var id string
	if err := e.call("/", peerIface+".GetMachineId").Store(&id); err != nil || id != hex.EncodeToString(host.ID[:]) || len(id) != 32 {
		t.Errorf("GetMachineId: %q, %v; want the host's %x", id, err, host.ID)
	}
	wantErr(t, e.call(managerPath, peerIface+".Pong"), ErrUnknownMethod, "")
}

// The caller itself as leader (leader 0), then /machine/self and
// GetMachineByPID(0) find it.
func TestSelf(t *testing.T) {
	e := newEnv(t)
	wantErr(t, e.call(machinePrefix+"self", propertiesIface+".Get", machineIface, "Name"), ErrUnknownObject, "")
	if err := e.manager("RegisterMachine", "me", []byte{}, "", "vm", uint32(0), "").Store(new(dbus.ObjectPath)); err != nil {
		t.Fatal(err)
	}
	defer e.mgr.Unregister(context.Background(), service.Caller{PIDFD: -1}, service.Selector{Name: "me"})
	var name dbus.Variant
	if err := e.call(machinePrefix+"self", propertiesIface+".Get", machineIface, "Name").Store(&name); err != nil || name.Value() != "me" {
		t.Fatalf("self: %v %v", name, err)
	}
	var path dbus.ObjectPath
	if err := e.manager("GetMachineByPID", uint32(0)).Store(&path); err != nil || path != MachinePath("me") {
		t.Fatalf("GetMachineByPID(0): %s %v", path, err)
	}
	if err := e.manager("GetMachineByPID", uint32(os.Getpid())).Store(&path); err != nil || path != MachinePath("me") {
		t.Fatalf("GetMachineByPID(self): %s %v", path, err)
	}
	var leader dbus.Variant
	if err := e.call(path, propertiesIface+".Get", machineIface, "Leader").Store(&leader); err != nil || leader.Value() != uint32(os.Getpid()) {
		t.Fatalf("leader %v %v", leader, err)
	}
	// "self" is never listed.
	var xml string
	e.call(machineNode, introspectIface+".Introspect").Store(&xml)
	if strings.Contains(xml, `"self"`) || !strings.Contains(xml, `<node name="me"/>`) {
		t.Errorf("machine node children:\n%s", xml)
	}
}

// RegisterMachineEx with a pidfd: the fd reaches the core through the relay
// and is not leaked.
func TestRegisterMachineExPIDFD(t *testing.T) {
	e := newEnv(t)
	l := sleeper(t)
	pidfd, err := unix.PidfdOpen(l.Process.Pid, 0)
	if err != nil {
		t.Skip("no pidfd support")
	}
	defer unix.Close(pidfd)
	props := []keyValue{
		{"Id", dbus.MakeVariant(testID)},
		{"Class", dbus.MakeVariant("container")},
		{"Service", dbus.MakeVariant("ex")},
		{"LeaderPIDFD", dbus.MakeVariant(dbus.UnixFD(pidfd))},
		{"LeaderPID", dbus.MakeVariant(uint32(l.Process.Pid))},
		{"NetworkInterfaces", dbus.MakeVariant([]int32{3})},
		{"SSHAddress", dbus.MakeVariant("vsock/5")},
		{"SSHPrivateKeyPath", dbus.MakeVariant("/k")},
	}
	other := sleeper(t)
	round := func() {
		t.Helper()
		if err := e.manager("RegisterMachineEx", "ex", props).Store(new(dbus.ObjectPath)); err != nil {
			t.Fatal(err)
		}
		var ssh [2]string
		if err := e.manager("GetMachineSSHInfo", "ex").Store(&ssh[0], &ssh[1]); err != nil || ssh != [2]string{"vsock/5", "/k"} {
			t.Errorf("ssh info %v %v", ssh, err)
		}
		var leader dbus.Variant
		if err := e.call(MachinePath("ex"), propertiesIface+".Get", machineIface, "Leader").Store(&leader); err != nil || leader.Value() != uint32(l.Process.Pid) {
			t.Fatalf("leader %v %v", leader, err)
		}
		wantErr(t, e.manager("RegisterMachineEx", "ex2", []keyValue{{"Bogus", dbus.MakeVariant("x")}}), ErrInvalidArgs, "Unknown property 'Bogus'")
		wantErr(t, e.manager("RegisterMachineEx", "ex2", []keyValue{{"LeaderPIDFDID", dbus.MakeVariant(uint64(3))}}), ErrInvalidArgs, "Both LeaderPID and LeaderPIDFDID")
		wantErr(t, e.manager("RegisterMachineEx", "ex2", []keyValue{{"Class", dbus.MakeVariant(uint32(3))}}), ErrInvalidArgs, "")
		wantErr(t, e.manager("RegisterMachineEx", "ex2", []keyValue{{"Class", dbus.MakeVariant("vm")}, {"LeaderPIDFD", dbus.MakeVariant(dbus.UnixFD(pidfd))}, {"LeaderPID", dbus.MakeVariant(uint32(other.Process.Pid))}}), ErrInvalidArgs, "different processes")
		wantErr(t, e.manager("RegisterMachineEx", "ex", []keyValue{{"Class", dbus.MakeVariant("vm")}, {"LeaderPIDFD", dbus.MakeVariant(dbus.UnixFD(pidfd))}}), ErrMachineExists, "")
		// Fds on methods that take none are closed before godbus sees them.
		wantErr(t, e.manager("GetMachine", dbus.UnixFD(pidfd)), ErrInvalidArgs, "")
		if err := e.manager("UnregisterMachine", "ex").Store(); err != nil {
			t.Fatal(err)
		}
		e.waitSignal("MachineRemoved", "ex")
	}
	round() // warms up the credential cache and the exit watcher
	before := countFDs(t)
	for i := 0; i < 10; i++ {
		round()
	}
	if after := countFDs(t); after > before {
		t.Errorf("fds: %d before, %d after", before, after)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestLogControl(t *testing.T) {
	e := newEnv(t)
	get := func(name string) string {
		var v dbus.Variant
		if err := e.call(logControlPath, propertiesIface+".Get", logControlIface, name).Store(&v); err != nil {
			t.Fatal(err)
		}
		return v.Value().(string)
	}
	if get("LogLevel") != "info" || get("SyslogIdentifier") != "machined-test" || get("LogTarget") != "console" {
		t.Errorf("defaults %s %s %s", get("LogLevel"), get("SyslogIdentifier"), get("LogTarget"))
	}
	for in, want := range map[string]string{"debug": "debug", "3": "err", "notice": "notice", "crit": "err"} {
		if err := e.call(logControlPath, propertiesIface+".Set", logControlIface, "LogLevel", dbus.MakeVariant(in)).Store(); err != nil {
			t.Fatal(err)
		}
		if got := get("LogLevel"); got != want {
			t.Errorf("set %s, reads %s", in, got)
		}
	}
	e.call(logControlPath, propertiesIface+".Set", logControlIface, "LogLevel", dbus.MakeVariant("debug"))
	if e.level.Level() != slog.LevelDebug {
		t.Errorf("slog level %v", e.level.Level())
	}
	wantErr(t, e.call(logControlPath, propertiesIface+".Set", logControlIface, "LogLevel", dbus.MakeVariant("bogus")), ErrInvalidArgs, "Invalid log level 'bogus'")
	wantErr(t, e.call(logControlPath, propertiesIface+".Set", logControlIface, "LogLevel", dbus.MakeVariant(uint32(7))), ErrInvalidArgs, "")
	wantErr(t, e.call(logControlPath, propertiesIface+".Set", logControlIface, "SyslogIdentifier", dbus.MakeVariant("x")), ErrPropertyRO, "")
}
