package machine1

import (
	"fmt"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/service"
)

// The core's request bounds reach D-Bus callers as InvalidArgs, and the Ex
// property arrays, which only the shim sees, are bounded here.
func TestRequestBounds(t *testing.T) {
	e := newEnv(t)
	pid := uint32(sleeper(t).Process.Pid)

	many := make([]int32, service.MaxNetIf+1)
	for i := range many {
		many[i] = int32(i + 1)
	}
	wantErr(t, e.manager("RegisterMachineWithNetwork", "nets", []byte{}, "", "container", pid, "", many), ErrInvalidArgs, "More than 256 network interfaces")
	wantErr(t, e.manager("CreateMachineWithNetwork", "nets", []byte{}, "", "container", pid, "", many, []keyValue{}), ErrInvalidArgs, "More than 256 network interfaces")
	if err := e.manager("RegisterMachineWithNetwork", "nets", []byte{}, "", "container", pid, "", many[:service.MaxNetIf]).Store(new(dbus.ObjectPath)); err != nil {
		t.Fatalf("%d interfaces refused: %v", service.MaxNetIf, err)
	}
	if err := e.manager("UnregisterMachine", "nets").Store(); err != nil {
		t.Fatal(err)
	}

	props := make([]keyValue, service.MaxScopeProperties+1)
	for i := range props {
		props[i] = keyValue{"Description", dbus.MakeVariant("x")}
	}
	wantErr(t, e.manager("CreateMachine", "scoped", []byte{}, "", "container", pid, "", props), ErrInvalidArgs, "More than 64 scope properties")

	ex := make([]keyValue, maxExProperties+1)
	for i := range ex {
		ex[i] = keyValue{"Class", dbus.MakeVariant("container")}
	}
	wantErr(t, e.manager("RegisterMachineEx", "ex", ex), ErrInvalidArgs, "More than 64 properties")
	ex = append(ex[:maxExProperties-1], keyValue{"LeaderPID", dbus.MakeVariant(pid)})
	if err := e.manager("RegisterMachineEx", "ex", ex).Store(new(dbus.ObjectPath)); err != nil {
		t.Fatalf("%d Ex properties refused: %v", maxExProperties, err)
	}

	many1025 := make([]string, service.MaxOpenArgs+1)
	wantErr(t, e.manager("OpenMachineShell", ".host", "", "", many1025, []string{}), ErrInvalidArgs, "More than 1024 arguments")
	wantErr(t, e.manager("OpenMachineShell", ".host", "", "", []string{}, many1025), ErrInvalidArgs, "More than 1024 environment variables")
	wantErr(t, e.call(MachinePath(".host"), machineIface+".OpenShell", "", "", many1025, []string{}), ErrInvalidArgs, "More than 1024 arguments")
	// At the bounds the request reaches the core, which finds no bus here to
	// start the shell on: NotSupported, upstream's answer then.
	args, env := make([]string, service.MaxOpenArgs), make([]string, service.MaxOpenEnvironment)
	for i := range args {
		args[i], env[i] = "a", fmt.Sprintf("K%d=v", i)
	}
	wantErr(t, e.manager("OpenMachineShell", ".host", "", "/bin/true", args, env), ErrNotSupported, "no system bus")

	wantErr(t, e.manager("RegisterMachine", "dots", []byte{}, "", "container", pid, "/var/lib/machines/../../etc"), ErrInvalidArgs, "'..'")
	wantErr(t, e.manager("RegisterMachineEx", "dots", []keyValue{{"Class", dbus.MakeVariant("vm")}, {"LeaderPID", dbus.MakeVariant(pid)}, {"SSHPrivateKeyPath", dbus.MakeVariant("/run/../root/key")}}), ErrInvalidArgs, "'..'")
}

// 65535 and 4294967295 are not ids: the map methods refuse them as upstream does.
func TestMapInvalidIDs(t *testing.T) {
	e := newEnv(t)
	for _, id := range []uint32{65535, 4294967295} {
		wantErr(t, e.manager("MapFromMachineUser", "nope", id), ErrInvalidArgs, "Invalid user ID")
		wantErr(t, e.manager("MapFromMachineGroup", "nope", id), ErrInvalidArgs, "Invalid group ID")
		wantErr(t, e.manager("MapToMachineUser", id), ErrInvalidArgs, "Invalid user ID")
		wantErr(t, e.manager("MapToMachineGroup", id), ErrInvalidArgs, "Invalid group ID")
	}
	wantErr(t, e.manager("MapToMachineUser", uint32(4294967294)), ErrNoSuchUserMapping, "")
}
