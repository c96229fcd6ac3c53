package machine1

import (
	"math"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/service"
	"github.com/machined-go/machined/service/proc"
)

// managerInterface is org.freedesktop.machine1.Manager, members and argument
// names as upstream v262 introspects them (KillMachine's second argument is
// "whom"; 252 called it "who", which no client can observe).
func managerInterface() *iface {
	return &iface{
		name: managerIface,
		methods: []method{
			{name: "GetMachine", in: args("s", "name"), out: args("o", "machine"), fn: getMachine},
			{name: "GetImage", in: args("s", "name"), out: args("o", "image"), fn: getImage},
			{name: "GetMachineByPID", in: args("u", "pid"), out: args("o", "machine"), fn: getMachineByPID},
			{name: "ListMachines", out: args("a(ssso)", "machines"), fn: listMachines},
			{name: "ListImages", out: args("a(ssbttto)", "images"), fn: listImages},
			{name: "CreateMachine", in: args("s", "name", "ay", "id", "s", "service", "s", "class", "u", "leader", "s", "root_directory", "a(sv)", "scope_properties"), out: args("o", "path"), fn: createMachine},
			{name: "CreateMachineWithNetwork", in: args("s", "name", "ay", "id", "s", "service", "s", "class", "u", "leader", "s", "root_directory", "ai", "ifindices", "a(sv)", "scope_properties"), out: args("o", "path"), fn: createMachineWithNetwork},
			{name: "CreateMachineEx", in: args("s", "name", "a(sv)", "properties", "a(sv)", "scope_properties"), out: args("o", "path"), fn: createMachineEx},
			{name: "RegisterMachine", in: args("s", "name", "ay", "id", "s", "service", "s", "class", "u", "leader", "s", "root_directory"), out: args("o", "path"), fn: registerMachine},
			{name: "RegisterMachineWithNetwork", in: args("s", "name", "ay", "id", "s", "service", "s", "class", "u", "leader", "s", "root_directory", "ai", "ifindices"), out: args("o", "path"), fn: registerMachineWithNetwork},
			{name: "RegisterMachineEx", in: args("s", "name", "a(sv)", "properties"), out: args("o", "path"), fn: registerMachineEx},
			{name: "UnregisterMachine", in: args("s", "name"), fn: byName(unregister)},
			{name: "TerminateMachine", in: args("s", "id"), fn: byName(terminate)},
			{name: "KillMachine", in: args("s", "name", "s", "whom", "i", "signal"), fn: byName(kill)},
			{name: "GetMachineAddresses", in: args("s", "name"), out: args("a(iay)", "addresses"), fn: byName(getAddresses)},
			{name: "GetMachineSSHInfo", in: args("s", "name"), out: args("s", "ssh_address", "s", "ssh_private_key_path"), fn: byName(getSSHInfo)},
			{name: "GetMachineOSRelease", in: args("s", "name"), out: args("a{ss}", "fields"), fn: byName(getOSRelease)},
			{name: "OpenMachinePTY", in: args("s", "name"), out: args("h", "pty", "s", "pty_path"), fn: byName(openPTY)},
			{name: "OpenMachineLogin", in: args("s", "name"), out: args("h", "pty", "s", "pty_path"), fn: byName(openLogin)},
			{name: "OpenMachineShell", in: args("s", "name", "s", "user", "s", "path", "as", "args", "as", "environment"), out: args("h", "pty", "s", "pty_path"), fn: byName(openShell)},
			{name: "BindMountMachine", in: args("s", "name", "s", "source", "s", "destination", "b", "read_only", "b", "mkdir"), fn: byName(bindMount)},
			{name: "CopyFromMachine", in: args("s", "name", "s", "source", "s", "destination"), fn: byName(copyFiles(false))},
			{name: "CopyToMachine", in: args("s", "name", "s", "source", "s", "destination"), fn: byName(copyFiles(true))},
			{name: "CopyFromMachineWithFlags", in: args("s", "name", "s", "source", "s", "destination", "t", "flags"), fn: byName(copyFiles(false))},
			{name: "CopyToMachineWithFlags", in: args("s", "name", "s", "source", "s", "destination", "t", "flags"), fn: byName(copyFiles(true))},
			{name: "OpenMachineRootDirectory", in: args("s", "name"), out: args("h", "fd"), fn: byName(openRootDirectory)},
			{name: "GetMachineUIDShift", in: args("s", "name"), out: args("u", "shift"), fn: byName(getUIDShift)},
			{name: "RemoveImage", in: args("s", "name"), fn: byImage(removeImage)},
			{name: "RenameImage", in: args("s", "name", "s", "new_name"), fn: byImage(renameImage)},
			{name: "CloneImage", in: args("s", "name", "s", "new_name", "b", "read_only"), fn: byImage(cloneImage)},
			{name: "MarkImageReadOnly", in: args("s", "name", "b", "read_only"), fn: byImage(markImageReadOnly)},
			{name: "GetImageHostname", in: args("s", "name"), out: args("s", "hostname"), fn: byImage(getImageHostname)},
			{name: "GetImageMachineID", in: args("s", "name"), out: args("ay", "id"), fn: byImage(getImageMachineID)},
			{name: "GetImageMachineInfo", in: args("s", "name"), out: args("a{ss}", "machine_info"), fn: byImage(getImageMachineInfo)},
			{name: "GetImageOSRelease", in: args("s", "name"), out: args("a{ss}", "os_release"), fn: byImage(getImageOSRelease)},
			{name: "SetPoolLimit", in: args("t", "size"), fn: setPoolLimit},
			{name: "SetImageLimit", in: args("s", "name", "t", "size"), fn: byImage(setImageLimit)},
			{name: "CleanPool", in: args("s", "mode"), out: args("a(st)", "images"), fn: cleanPool},
			{name: "MapFromMachineUser", in: args("s", "name", "u", "uid_inner"), out: args("u", "uid_outer"), fn: mapFrom(false)},
			{name: "MapToMachineUser", in: args("u", "uid_outer"), out: args("s", "machine_name", "o", "machine_path", "u", "uid_inner"), fn: mapTo(false)},
			{name: "MapFromMachineGroup", in: args("s", "name", "u", "gid_inner"), out: args("u", "gid_outer"), fn: mapFrom(true)},
			{name: "MapToMachineGroup", in: args("u", "gid_outer"), out: args("s", "machine_name", "o", "machine_path", "u", "gid_inner"), fn: mapTo(true)},
		},
		signals: []signal{
			{name: "MachineNew", args: args("s", "machine", "o", "path")},
			{name: "MachineRemoved", args: args("s", "machine", "o", "path")},
		},
		props: []property{
			{name: "PoolPath", sig: "s", emits: emitsFalse, get: func(c *call) (any, error) { path, _, _ := c.mgr().PoolInfo(); return path, nil }},
			// Off btrfs both are UINT64_MAX (unknown), as upstream reports them.
			{name: "PoolUsage", sig: "t", emits: emitsFalse, get: func(c *call) (any, error) { _, usage, _ := c.mgr().PoolInfo(); return usage, nil }},
			{name: "PoolLimit", sig: "t", emits: emitsFalse, get: func(c *call) (any, error) { _, _, limit := c.mgr().PoolInfo(); return limit, nil }},
		},
	}
}

// nobody is the caller for lookups that never consult the caller (by name).
var nobody = service.Caller{UID: math.MaxUint32, GID: math.MaxUint32, PIDFD: -1}

// machineByName looks up the machine a D-Bus client names. A name no machine
// can have is simply not known, as upstream's lookups answer, rather than an
// invalid argument (which the Varlink API answers).
func machineByName(c *call, name string) (service.MachineInfo, error) {
	if !service.ValidLookupName(name) {
		return service.MachineInfo{}, noSuchMachine(name)
	}
	return c.mgr().Get(nobody, service.Selector{Name: name})
}

// noSuchMachine is upstream's answer to a name no machine can have: sd-bus
// looks it up like any other and finds nothing.
func noSuchMachine(name string) error {
	return errorf(ErrNoSuchMachine, "No machine '%s' known", name)
}

func getMachine(c *call) ([]any, error) {
	mi, err := machineByName(c, c.body[0].(string))
	if err != nil {
		return nil, err
	}
	return []any{MachinePath(mi.Name)}, nil
}

func getMachineByPID(c *call) ([]any, error) {
	caller, err := c.pinnedCallerOf()
	if err != nil {
		return nil, err
	}
	mi, err := c.mgr().GetByPID(caller, int(c.body[0].(uint32)))
	if err != nil {
		return nil, err
	}
	return []any{MachinePath(mi.Name)}, nil
}

// machineEntry is one (ssso) of ListMachines.
type machineEntry struct {
	Name, Class, Service string
	Path                 dbus.ObjectPath
}

func listMachines(c *call) ([]any, error) {
	list := c.mgr().ListBrief()
	out := make([]machineEntry, 0, len(list))
	for _, b := range list {
		out = append(out, machineEntry{b.Name, string(b.Class), b.Service, MachinePath(b.Name)})
	}
	return []any{out}, nil
}

// byName turns a Machine-object method into its Manager redirect: the first
// argument names the machine, the rest are the method's own.
func byName(fn func(c *call, mi service.MachineInfo, rest []any) ([]any, error)) func(*call) ([]any, error) {
	return func(c *call) ([]any, error) {
		mi, err := machineByName(c, c.body[0].(string))
		if err != nil {
			return nil, err
		}
		return fn(c, mi, c.body[1:])
	}
}

func mapFrom(group bool) func(*call) ([]any, error) {
	return func(c *call) ([]any, error) {
		id := c.body[1].(uint32)
		sel := service.Selector{Name: c.body[0].(string)}
		// Upstream checks the id first, then looks the name up.
		if service.ValidID(id) && !service.ValidLookupName(sel.Name) {
			return nil, noSuchMachine(sel.Name)
		}
		var m service.IDMapping
		var err error
		if group {
			m, err = c.mgr().MapFrom(nobody, sel, nil, &id)
		} else {
			m, err = c.mgr().MapFrom(nobody, sel, &id, nil)
		}
		if err != nil {
			return nil, err
		}
		if group {
			return []any{*m.GID}, nil
		}
		return []any{*m.UID}, nil
	}
}

func mapTo(group bool) func(*call) ([]any, error) {
	return func(c *call) ([]any, error) {
		id := c.body[0].(uint32)
		var m service.IDMapping
		var err error
		if group {
			m, err = c.mgr().MapTo(nil, &id)
		} else {
			m, err = c.mgr().MapTo(&id, nil)
		}
		if err != nil {
			return nil, err
		}
		inner := m.UID
		if group {
			inner = m.GID
		}
		return []any{m.MachineName, MachinePath(m.MachineName), *inner}, nil
	}
}

// registration arguments ----------------------------------------------------

// keyValue is one (sv) of a property array.
type keyValue struct {
	Name  string
	Value dbus.Variant
}

func propertyArray(v any) ([]keyValue, error) {
	var kv []keyValue
	if err := dbus.Store([]any{v}, &kv); err != nil {
		return nil, errorf(ErrInvalidArgs, "Invalid property array")
	}
	return kv, nil
}

func machineID(b []byte) ([16]byte, error) {
	var id [16]byte
	switch len(b) {
	case 0:
	case 16:
		copy(id[:], b)
	default:
		return id, errorf(ErrInvalidArgs, "Invalid machine ID parameter")
	}
	return id, nil
}

func leaderPID(u uint32) (int, error) {
	if u > math.MaxInt32 {
		return 0, errorf(ErrInvalidArgs, "Invalid leader PID")
	}
	return int(u), nil
}

func ifindices(in []int32) []int {
	if len(in) == 0 {
		return nil
	}
	out := make([]int, len(in))
	for i, v := range in {
		out[i] = int(v)
	}
	return out
}

// classic decodes the shared head of (Create|Register)Machine[WithNetwork]:
// name, id, service, class, leader, root_directory.
func classic(body []any) (service.RegisterRequest, error) {
	req := service.RegisterRequest{
		Name:          body[0].(string),
		Service:       body[2].(string),
		Class:         body[3].(string),
		RootDirectory: body[5].(string),
	}
	var err error
	if req.ID, err = machineID(body[1].([]byte)); err != nil {
		return req, err
	}
	if req.Leader, err = leaderPID(body[4].(uint32)); err != nil {
		return req, err
	}
	return req, nil
}

// scopeProperties decodes a CreateMachine property array into the request:
// Slice becomes the typed field the core checks and backends act on; the
// other properties become typed values for the core's whitelist, which the
// systemd backend encodes again.
func scopeProperties(req *service.RegisterRequest, v any) error {
	kv, err := propertyArray(v)
	if err != nil {
		return err
	}
	req.ScopeProperties = make([]service.UnitProperty, 0, len(kv))
	sliceSeen := false
	for _, p := range kv {
		if p.Name == "Slice" && !sliceSeen {
			s, ok := p.Value.Value().(string)
			if !ok {
				return errorf(ErrInvalidArgs, "Property Slice must be a string")
			}
			req.Slice, sliceSeen = s, true
			continue
		}
		val, err := scopePropertyValue(p.Name, p.Value)
		if err != nil {
			return err
		}
		req.ScopeProperties = append(req.ScopeProperties, service.UnitProperty{Name: p.Name, Value: val})
	}
	return nil
}

// register hands a request to the core and answers the new machine's path.
// With AllocateUnit the core returns only once the scope exists (the
// systemd backend waits for the start job), so the reply is the signal that
// the scope is there, as upstream's deferred CreateMachine reply is.
func register(c *call, req service.RegisterRequest) ([]any, error) {
	caller, err := c.pinnedCallerOf()
	if err != nil {
		if req.LeaderRef != nil {
			req.LeaderRef.Close()
		}
		return nil, err
	}
	mi, err := c.mgr().Register(c.ctx, caller, req)
	if err != nil {
		return nil, err
	}
	return []any{MachinePath(mi.Name)}, nil
}

func registerMachine(c *call) ([]any, error) {
	req, err := classic(c.body)
	if err != nil {
		return nil, err
	}
	return register(c, req)
}

func registerMachineWithNetwork(c *call) ([]any, error) {
	req, err := classic(c.body)
	if err != nil {
		return nil, err
	}
	req.NetIf = ifindices(c.body[6].([]int32))
	return register(c, req)
}

func createMachine(c *call) ([]any, error) {
	req, err := classic(c.body)
	if err != nil {
		return nil, err
	}
	if err = scopeProperties(&req, c.body[6]); err != nil {
		return nil, err
	}
	req.AllocateUnit = true
	return register(c, req)
}

func createMachineWithNetwork(c *call) ([]any, error) {
	req, err := classic(c.body)
	if err != nil {
		return nil, err
	}
	req.NetIf = ifindices(c.body[6].([]int32))
	if err = scopeProperties(&req, c.body[7]); err != nil {
		return nil, err
	}
	req.AllocateUnit = true
	return register(c, req)
}

func registerMachineEx(c *call) ([]any, error) {
	req, err := exRequest(c.body[0].(string), c.body[1])
	if err != nil {
		return nil, err
	}
	return register(c, req)
}

func createMachineEx(c *call) ([]any, error) {
	req, err := exRequest(c.body[0].(string), c.body[1])
	if err != nil {
		return nil, err
	}
	if err = scopeProperties(&req, c.body[2]); err != nil {
		if req.LeaderRef != nil {
			req.LeaderRef.Close()
		}
		return nil, err
	}
	req.AllocateUnit = true
	return register(c, req)
}

// maxExProperties bounds the keyed properties of the …Ex methods: there are ten
// names, and a client repeating them has nothing legitimate to say.
const maxExProperties = 64

// exRequest decodes the keyed properties of the …Ex methods (259+). Without
// a leader the caller leads; LeaderPIDFD is preferred and pinned at once.
func exRequest(name string, v any) (req service.RegisterRequest, err error) {
	req.Name = name
	var (
		pidfd         = -1
		pid           uint32
		hasPID, hasID bool
	)
	defer func() {
		if err != nil && pidfd >= 0 {
			closeFD(pidfd)
		}
	}()
	kv, err := propertyArray(v)
	if err != nil {
		return req, err
	}
	if len(kv) > maxExProperties {
		return req, errorf(ErrInvalidArgs, "More than %d properties", maxExProperties)
	}
	wrong := func(p keyValue, want string) error {
		return errorf(ErrInvalidArgs, "Property %s has signature '%s', expected '%s'", p.Name, p.Value.Signature().String(), want)
	}
	for _, p := range kv {
		val := p.Value.Value()
		switch p.Name {
		case "Id":
			b, ok := val.([]byte)
			if !ok {
				return req, wrong(p, "ay")
			}
			if req.ID, err = machineID(b); err != nil {
				return req, err
			}
		case "Service", "Class", "RootDirectory", "SSHAddress", "SSHPrivateKeyPath":
			s, ok := val.(string)
			if !ok {
				return req, wrong(p, "s")
			}
			switch p.Name {
			case "Service":
				req.Service = s
			case "Class":
				req.Class = s
			case "RootDirectory":
				req.RootDirectory = s
			case "SSHAddress":
				req.SSHAddress = s
			case "SSHPrivateKeyPath":
				req.SSHPrivateKeyPath = s
			}
		case "LeaderPIDFD":
			fd, ok := val.(dbus.UnixFD)
			if !ok {
				return req, wrong(p, "h")
			}
			if pidfd >= 0 {
				closeFD(pidfd)
			}
			pidfd = int(fd)
		case "LeaderPID":
			u, ok := val.(uint32)
			if !ok {
				return req, wrong(p, "u")
			}
			pid, hasPID = u, true
		case "LeaderPIDFDID":
			t, ok := val.(uint64)
			if !ok {
				return req, wrong(p, "t")
			}
			req.LeaderPIDFDID, hasID = t, true
		case "NetworkInterfaces":
			ai, ok := val.([]int32)
			if !ok {
				return req, wrong(p, "ai")
			}
			req.NetIf = ifindices(ai)
		case "VSockCID":
			u, ok := val.(uint32)
			if !ok {
				return req, wrong(p, "u")
			}
			req.VSockCID = &u
		default:
			return req, errorf(ErrInvalidArgs, "Unknown property '%s'", p.Name)
		}
	}
	if hasPID {
		p, err := leaderPID(pid)
		if err != nil {
			return req, err
		}
		if err := req.NameLeader("LeaderPID", p); err != nil {
			return req, err
		}
	}
	if hasID && !hasPID && pidfd < 0 {
		return req, errorf(ErrInvalidArgs, "Both LeaderPID and LeaderPIDFDID must be specified to identify the leader")
	}
	if pidfd >= 0 {
		ref, ferr := proc.FromFD(pidfd) // takes the fd, also on failure
		pidfd = -1
		if ferr != nil {
			return req, errorf(ErrInvalidArgs, "LeaderPIDFD is not a valid pidfd")
		}
		if err := req.NameLeader("LeaderPIDFD", ref.PID); err != nil {
			ref.Close()
			return req, err
		}
		req.LeaderRef = ref
	}
	return req, nil
}

// lifecycle -----------------------------------------------------------------

func unregister(c *call, mi service.MachineInfo, _ []any) ([]any, error) {
	caller, err := c.callerOf()
	if err != nil {
		return nil, err
	}
	return nil, c.mgr().Unregister(c.ctx, caller, service.Selector{Name: mi.Name})
}

func terminate(c *call, mi service.MachineInfo, _ []any) ([]any, error) {
	caller, err := c.callerOf()
	if err != nil {
		return nil, err
	}
	return nil, c.mgr().Terminate(c.ctx, caller, service.Selector{Name: mi.Name})
}

// kill takes (whom, signal); "" means all, as upstream.
func kill(c *call, mi service.MachineInfo, rest []any) ([]any, error) {
	whom, sig := rest[0].(string), rest[1].(int32)
	caller, err := c.callerOf()
	if err != nil {
		return nil, err
	}
	return nil, c.mgr().Kill(c.ctx, caller, service.Selector{Name: mi.Name}, whom, int(sig))
}

// metadata ------------------------------------------------------------------

// address is one (iay) of GetMachineAddresses.
type address struct {
	Family  int32
	Address []byte
}

func getAddresses(c *call, mi service.MachineInfo, _ []any) ([]any, error) {
	addrs, err := c.mgr().Addresses(c.ctx, mi)
	if err != nil {
		return nil, err
	}
	out := make([]address, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, address{int32(a.Family), a.Addr})
	}
	return []any{out}, nil
}

// getSSHInfo answers the stored values; upstream refuses with ENOENT unless
// both are known.
func getSSHInfo(c *call, mi service.MachineInfo, _ []any) ([]any, error) {
	if err := inspect(c, mi); err != nil {
		return nil, err
	}
	if mi.SSHAddress == "" || mi.SSHPrivateKeyPath == "" {
		return nil, errorf(ErrFileNotFound, "Machine %s has no SSH information", mi.Name)
	}
	return []any{mi.SSHAddress, mi.SSHPrivateKeyPath}, nil
}

// inspect authorizes reading what a restricted view of mi withholds.
func inspect(c *call, mi service.MachineInfo) error {
	caller, err := c.callerOf()
	if err != nil {
		return err
	}
	return c.mgr().Viewer(c.ctx, caller, mi.Name).Inspect(mi)
}

func getOSRelease(c *call, mi service.MachineInfo, _ []any) ([]any, error) {
	if err := inspect(c, mi); err != nil {
		return nil, err
	}
	osr, err := c.mgr().OSRelease(mi)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(osr))
	for _, kv := range osr {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return []any{out}, nil
}

func getUIDShift(c *call, mi service.MachineInfo, _ []any) ([]any, error) {
	shift, err := c.mgr().UIDShift(mi)
	if err != nil {
		return nil, err
	}
	return []any{shift}, nil
}

// openShell bounds the argument vector and the environment (user, path, args,
// environment follow the machine), as Open does on Varlink.
func openShell(c *call, mi service.MachineInfo, rest []any) ([]any, error) {
	if n := len(rest[2].([]string)); n > service.MaxOpenArgs {
		return nil, errorf(ErrInvalidArgs, "More than %d arguments", service.MaxOpenArgs)
	}
	if n := len(rest[3].([]string)); n > service.MaxOpenEnvironment {
		return nil, errorf(ErrInvalidArgs, "More than %d environment variables", service.MaxOpenEnvironment)
	}
	caller, err := c.callerOf()
	if err != nil {
		return nil, err
	}
	req := service.ShellRequest{User: rest[0].(string), Path: rest[1].(string), Args: rest[2].([]string), Env: rest[3].([]string)}
	t, err := c.mgr().OpenShell(c.ctx, caller, service.Selector{Name: mi.Name}, req)
	if err != nil {
		return nil, err
	}
	fd, err := handOver(t.Master)
	return reply(fd, err, t.Path)
}

// copyReplace is the one flag of Copy*WithFlags: replace existing files.
const copyReplace = 1

// copyFiles serves the Copy* methods, with or without flags (the last
// argument when there are three). The copy ends when the caller leaves the bus.
func copyFiles(to bool) func(*call, service.MachineInfo, []any) ([]any, error) {
	return func(c *call, mi service.MachineInfo, rest []any) ([]any, error) {
		req := service.CopyRequest{Source: rest[0].(string), Destination: rest[1].(string), Normalized: true}
		if len(rest) == 3 {
			flags := rest[2].(uint64)
			if flags&^copyReplace != 0 {
				return nil, errorf(ErrInvalidArgs, "Invalid copy flags %#x", flags)
			}
			req.Replace = flags&copyReplace != 0
		}
		caller, err := c.callerOf()
		if err != nil {
			return nil, err
		}
		ctx, stop := c.s.untilGone(c.ctx, c.sender)
		defer stop()
		run := c.mgr().CopyFrom
		if to {
			run = c.mgr().CopyTo
		}
		return nil, run(ctx, caller, service.Selector{Name: mi.Name}, req)
	}
}

// bindMount serves BindMountMachine and Machine.BindMount.
func bindMount(c *call, mi service.MachineInfo, rest []any) ([]any, error) {
	req := service.BindMountRequest{
		Source: rest[0].(string), Destination: rest[1].(string),
		ReadOnly: rest[2].(bool), Mkdir: rest[3].(bool), Normalized: true,
	}
	caller, err := c.callerOf()
	if err != nil {
		return nil, err
	}
	return nil, c.mgr().BindMount(c.ctx, caller, service.Selector{Name: mi.Name}, req)
}
