package machine1

import (
	"github.com/machined-go/machined/service"
)

// machineInterface is org.freedesktop.machine1.Machine. Every method works on
// the object's machine, resolved from the path for each call.
func machineInterface() *iface {
	on := func(fn func(*call, service.MachineInfo, []any) ([]any, error)) func(*call) ([]any, error) {
		return func(c *call) ([]any, error) { return fn(c, c.obj.machine, c.body) }
	}
	str := func(f func(mi service.MachineInfo) string) func(*call) (any, error) {
		return func(c *call) (any, error) { return f(c.obj.machine), nil }
	}
	return &iface{
		name: machineIface,
		methods: []method{
			{name: "Terminate", fn: on(terminate)},
			{name: "Kill", in: args("s", "whom", "i", "signal"), fn: on(kill)},
			{name: "GetAddresses", out: args("a(iay)", "addresses"), fn: on(getAddresses)},
			{name: "GetSSHInfo", out: args("s", "ssh_address", "s", "ssh_private_key_path"), fn: on(getSSHInfo)},
			{name: "GetOSRelease", out: args("a{ss}", "fields"), fn: on(getOSRelease)},
			{name: "GetUIDShift", out: args("u", "shift"), fn: on(getUIDShift)},
			{name: "OpenPTY", out: args("h", "pty", "s", "pty_path"), fn: on(openPTY)},
			{name: "OpenLogin", out: args("h", "pty", "s", "pty_path"), fn: on(openLogin)},
			{name: "OpenShell", in: args("s", "user", "s", "path", "as", "args", "as", "environment"), out: args("h", "pty", "s", "pty_path"), fn: on(openShell)},
			{name: "BindMount", in: args("s", "source", "s", "destination", "b", "read_only", "b", "mkdir"), fn: on(bindMount)},
			{name: "CopyFrom", in: args("s", "source", "s", "destination"), fn: on(copyFiles(false))},
			{name: "CopyTo", in: args("s", "source", "s", "destination"), fn: on(copyFiles(true))},
			{name: "CopyFromWithFlags", in: args("s", "source", "s", "destination", "t", "flags"), fn: on(copyFiles(false))},
			{name: "CopyToWithFlags", in: args("s", "source", "s", "destination", "t", "flags"), fn: on(copyFiles(true))},
			{name: "OpenRootDirectory", out: args("h", "fd"), fn: on(openRootDirectory)},
		},
		props: []property{
			{name: "Name", sig: "s", emits: emitsConst, get: str(func(mi service.MachineInfo) string { return mi.Name })},
			{name: "Id", sig: "ay", emits: emitsConst, get: func(c *call) (any, error) {
				if !c.obj.machine.HasID() {
					return []byte{}, nil
				}
				id := c.obj.machine.ID
				return id[:], nil
			}},
			{name: "Timestamp", sig: "t", emits: emitsConst, get: func(c *call) (any, error) { return c.obj.machine.Timestamp.Realtime, nil }},
			{name: "TimestampMonotonic", sig: "t", emits: emitsConst, get: func(c *call) (any, error) { return c.obj.machine.Timestamp.Monotonic, nil }},
			{name: "Service", sig: "s", emits: emitsConst, get: str(func(mi service.MachineInfo) string { return mi.Service })},
			{name: "Unit", sig: "s", emits: emitsConst, get: str(func(mi service.MachineInfo) string { return mi.Unit })},
			{name: "Scope", sig: "s", emits: emitsConst, hidden: true, get: str(func(mi service.MachineInfo) string { return mi.Unit })},
			{name: "Subgroup", sig: "s", emits: emitsConst, get: str(func(mi service.MachineInfo) string { return mi.Subgroup })},
			{name: "Leader", sig: "u", emits: emitsConst, private: true, get: func(c *call) (any, error) { return uint32(c.obj.machine.Leader.PID), nil }},
			{name: "LeaderPIDFDId", sig: "t", emits: emitsConst, private: true, get: func(c *call) (any, error) { return c.obj.machine.Leader.PIDFDID, nil }},
			{name: "Supervisor", sig: "u", emits: emitsConst, private: true, get: func(c *call) (any, error) { return uint32(c.obj.machine.Supervisor.PID), nil }},
			{name: "SupervisorPIDFDId", sig: "t", emits: emitsConst, private: true, get: func(c *call) (any, error) { return c.obj.machine.Supervisor.PIDFDID, nil }},
			{name: "Class", sig: "s", emits: emitsConst, get: str(func(mi service.MachineInfo) string { return string(mi.Class) })},
			{name: "RootDirectory", sig: "s", emits: emitsConst, private: true, get: str(func(mi service.MachineInfo) string { return mi.RootDirectory })},
			{name: "NetworkInterfaces", sig: "ai", emits: emitsConst, get: func(c *call) (any, error) {
				out := make([]int32, len(c.obj.machine.NetIf))
				for i, v := range c.obj.machine.NetIf {
					out[i] = int32(v)
				}
				return out, nil
			}},
			{name: "VSockCID", sig: "u", emits: emitsConst, get: func(c *call) (any, error) { return c.obj.machine.VSockCID, nil }},
			{name: "SSHAddress", sig: "s", emits: emitsConst, private: true, get: str(func(mi service.MachineInfo) string { return mi.SSHAddress })},
			{name: "SSHPrivateKeyPath", sig: "s", emits: emitsConst, private: true, get: str(func(mi service.MachineInfo) string { return mi.SSHPrivateKeyPath })},
			{name: "State", sig: "s", emits: emitsFalse, get: str(func(mi service.MachineInfo) string { return string(mi.State) })},
			{name: "UID", sig: "u", emits: emitsConst, private: true, get: func(c *call) (any, error) { return c.obj.machine.UID, nil }},
		},
	}
}
