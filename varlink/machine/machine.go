package machine

import (
	"context"
	_ "embed"
	"encoding/hex"
	"log/slog"
	"math"
	"os"

	"github.com/machined-go/machined/varlink"

	"github.com/machined-go/machined/service"
)

//go:embed idl/io.systemd.Machine.varlink
var machineIDL string

// machineIface serves io.systemd.Machine: decode strictly, call the core, encode.
// It mirrors upstream's machine-varlink.c; business rules live in service.
type machineIface struct {
	mgr *service.Manager
}

// New builds the dispatcher of the machine socket: io.systemd.Machine,
// io.github.machinedgo.MachineEvents and io.systemd.service (with io.systemd and org.varlink.service, which every
// dispatcher has), and the other front ends served beside them (io.systemd.MachineImage).
func New(mgr *service.Manager, level *slog.LevelVar, id varlink.Identity, log *slog.Logger, others ...varlink.Interface) *varlink.Dispatcher {
	ifaces := append([]varlink.Interface{&machineIface{mgr: mgr}, &eventsIface{mgr: mgr}, &serviceIface{level: level}}, others...)
	return varlink.NewDispatcher(id, log, ifaces...)
}

func (*machineIface) Name() string        { return "io.systemd.Machine" }
func (*machineIface) Description() string { return machineIDL }

var machineMethods = map[string]func(*machineIface, context.Context, *varlink.Call) error{
	"Register":          (*machineIface).register,
	"Unregister":        (*machineIface).unregister,
	"Terminate":         (*machineIface).terminate,
	"Kill":              (*machineIface).kill,
	"List":              (*machineIface).list,
	"Open":              (*machineIface).open,
	"MapFrom":           (*machineIface).mapFrom,
	"MapTo":             (*machineIface).mapTo,
	"BindMount":         (*machineIface).bindMount,
	"CopyFrom":          (*machineIface).copy,
	"CopyTo":            (*machineIface).copy,
	"OpenRootDirectory": (*machineIface).openRootDirectory,
}

func (f *machineIface) Serve(ctx context.Context, c *varlink.Call) error {
	h, ok := machineMethods[c.Member]
	if !ok {
		return c.ReplyMethodNotFound(ctx)
	}
	return h(f, ctx, c)
}

// lookup holds the fields every per-machine method shares.
type lookup struct {
	name        string
	pid         processID
	interactive bool
}

func (l *lookup) fields() []varlink.Field {
	return []varlink.Field{
		varlink.StrField("name", &l.name, false),
		processIDField("pid", &l.pid),
		varlink.BoolField("allowInteractiveAuthentication", &l.interactive),
	}
}

func (l *lookup) selector() service.Selector {
	return service.Selector{Name: l.name, HasPID: l.pid.set, PID: int(l.pid.pid), PIDFDID: uint64(l.pid.pidfdID)}
}

// callerOf describes the peer to the core. Only Register uses the caller's
// pidfd (the caller as leader, or as supervisor), so only it asks for one.
func callerOf(ctx context.Context, interactive bool) service.Caller {
	return peerCaller(ctx, interactive, false)
}

func registrarOf(ctx context.Context, interactive bool) service.Caller {
	return peerCaller(ctx, interactive, true)
}

func peerCaller(ctx context.Context, interactive, withPidfd bool) service.Caller {
	c := service.Caller{PID: 0, PIDFD: -1, Interactive: interactive}
	if p, ok := varlink.PeerFromContext(ctx); ok {
		c.UID, c.GID, c.PID = p.UID, p.GID, p.PID
		if withPidfd {
			c.PIDFD, c.PIDFDID = p.PIDFD(), p.PIDFDID()
		}
	} else {
		c.UID = math.MaxUint32 // unknown peers are nobody
	}
	return c
}

func replyEmpty(ctx context.Context, c *varlink.Call) error { return c.Reply(ctx, nil) }

func (f *machineIface) register(ctx context.Context, c *varlink.Call) error {
	var (
		req                   service.RegisterRequest
		id                    string
		leader, vsock         int64
		hasLeader, hasVSock   bool
		leaderPID             processID
		interactive, allocate bool
		netif                 []int
	)
	err := varlink.DecodeParams(c.Parameters,
		varlink.StrField("name", &req.Name, true),
		varlink.StrField("id", &id, false),
		varlink.StrField("service", &req.Service, false),
		varlink.StrField("class", &req.Class, true),
		varlink.IntField("leader", &leader, &hasLeader, false, 0, math.MaxInt32),
		processIDField("leaderProcessId", &leaderPID),
		varlink.IgnoredField("supervisor"),
		varlink.IgnoredField("supervisorProcessId"),
		varlink.StrField("rootDirectory", &req.RootDirectory, false),
		varlink.IntListField("ifIndices", &netif, 1, math.MaxInt32, service.MaxNetIf),
		varlink.IntField("vSockCid", &vsock, &hasVSock, false, 0, math.MaxUint32),
		varlink.StrField("sshAddress", &req.SSHAddress, false),
		varlink.StrField("sshPrivateKeyPath", &req.SSHPrivateKeyPath, false),
		varlink.StrField("controlAddress", &req.ControlAddress, false),
		varlink.BoolField("allocateUnit", &allocate),
		varlink.BoolField("allowInteractiveAuthentication", &interactive),
	)
	if err != nil {
		return replyError(ctx, c, err)
	}
	if id != "" {
		var ok bool
		if req.ID, ok = parseMachineID(id); !ok {
			return replyError(ctx, c, &varlink.ParamError{Name: "id"})
		}
	}
	if hasLeader {
		if err := req.NameLeader("leader", int(leader)); err != nil {
			return replyError(ctx, c, err)
		}
	}
	if leaderPID.set {
		if err := req.NameLeader("leaderProcessId", int(leaderPID.pid)); err != nil {
			return replyError(ctx, c, err)
		}
		req.LeaderPIDFDID = uint64(leaderPID.pidfdID)
	}
	if hasVSock {
		v := uint32(vsock)
		req.VSockCID = &v
	}
	req.NetIf, req.AllocateUnit = netif, allocate
	if _, err := f.mgr.Register(ctx, registrarOf(ctx, interactive), req); err != nil {
		return replyError(ctx, c, err)
	}
	return replyEmpty(ctx, c)
}

func (f *machineIface) unregister(ctx context.Context, c *varlink.Call) error {
	var l lookup
	if err := varlink.DecodeParams(c.Parameters, l.fields()...); err != nil {
		return replyError(ctx, c, err)
	}
	if err := f.mgr.Unregister(ctx, callerOf(ctx, l.interactive), l.selector()); err != nil {
		return replyError(ctx, c, err)
	}
	return replyEmpty(ctx, c)
}

func (f *machineIface) terminate(ctx context.Context, c *varlink.Call) error {
	var l lookup
	if err := varlink.DecodeParams(c.Parameters, l.fields()...); err != nil {
		return replyError(ctx, c, err)
	}
	if err := f.mgr.Terminate(ctx, callerOf(ctx, l.interactive), l.selector()); err != nil {
		return replyError(ctx, c, err)
	}
	return replyEmpty(ctx, c)
}

func (f *machineIface) kill(ctx context.Context, c *varlink.Call) error {
	var (
		l    lookup
		whom string
		sig  int64
	)
	fields := append(l.fields(),
		varlink.StrField("whom", &whom, false),
		varlink.IntField("signal", &sig, nil, true, math.MinInt32, math.MaxInt32),
	)
	if err := varlink.DecodeParams(c.Parameters, fields...); err != nil {
		return replyError(ctx, c, err)
	}
	if err := f.mgr.Kill(ctx, callerOf(ctx, l.interactive), l.selector(), whom, int(sig)); err != nil {
		return replyError(ctx, c, err)
	}
	return replyEmpty(ctx, c)
}

func (f *machineIface) mapFrom(ctx context.Context, c *varlink.Call) error {
	var (
		l              lookup
		uid, gid       int64
		hasUID, hasGID bool
	)
	fields := append(l.fields(),
		varlink.IntField("uid", &uid, &hasUID, false, 0, math.MaxUint32-1),
		varlink.IntField("gid", &gid, &hasGID, false, 0, math.MaxUint32-1),
	)
	if err := varlink.DecodeParams(c.Parameters, fields...); err != nil {
		return replyError(ctx, c, err)
	}
	m, err := f.mgr.MapFrom(callerOf(ctx, l.interactive), l.selector(), optU32(uid, hasUID), optU32(gid, hasGID))
	if err != nil {
		return replyError(ctx, c, err)
	}
	return c.Reply(ctx, struct {
		UID *uint32 `json:"uid,omitempty"`
		GID *uint32 `json:"gid,omitempty"`
	}{m.UID, m.GID})
}

func (f *machineIface) mapTo(ctx context.Context, c *varlink.Call) error {
	var (
		uid, gid       int64
		hasUID, hasGID bool
	)
	if err := varlink.DecodeParams(c.Parameters,
		varlink.IntField("uid", &uid, &hasUID, false, 0, math.MaxUint32-1),
		varlink.IntField("gid", &gid, &hasGID, false, 0, math.MaxUint32-1),
	); err != nil {
		return replyError(ctx, c, err)
	}
	m, err := f.mgr.MapTo(optU32(uid, hasUID), optU32(gid, hasGID))
	if err != nil {
		return replyError(ctx, c, err)
	}
	return c.Reply(ctx, struct {
		UID         *uint32 `json:"uid,omitempty"`
		GID         *uint32 `json:"gid,omitempty"`
		MachineName string  `json:"machineName,omitempty"`
	}{m.UID, m.GID, m.MachineName})
}

func optU32(v int64, set bool) *uint32 {
	if !set {
		return nil
	}
	u := uint32(v)
	return &u
}

func (f *machineIface) open(ctx context.Context, c *varlink.Call) error {
	var (
		l         lookup
		mode      string
		req       service.ShellRequest
		userField = varlink.StrField("user", &req.User, false)
		pathField = varlink.StrField("path", &req.Path, false)
		argsField = varlink.StrListField("args", &req.Args, service.MaxOpenArgs)
		envField  = varlink.StrListField("environment", &req.Env, service.MaxOpenEnvironment)
		modeField = varlink.StrField("mode", &mode, true)
	)
	if err := varlink.DecodeParams(c.Parameters, append(l.fields(), modeField, userField, pathField, argsField, envField)...); err != nil {
		return replyError(ctx, c, err)
	}
	caller := callerOf(ctx, l.interactive)
	var (
		t   service.Terminal
		err error
	)
	switch mode {
	case "tty":
		t, err = f.mgr.OpenPTY(ctx, caller, l.selector())
	case "login":
		t, err = f.mgr.OpenLogin(ctx, caller, l.selector())
	case "shell":
		t, err = f.mgr.OpenShell(ctx, caller, l.selector(), req)
	default:
		return replyError(ctx, c, &varlink.ParamError{Name: "mode"})
	}
	if err != nil {
		return replyError(ctx, c, err)
	}
	defer t.Master.Close()
	return c.ReplyWithFDs(ctx, struct {
		FD   int    `json:"ptyFileDescriptor"`
		Path string `json:"ptyPath"`
	}{0, t.Path}, []*os.File{t.Master})
}

func (f *machineIface) bindMount(ctx context.Context, c *varlink.Call) error {
	var l lookup
	var req service.BindMountRequest
	err := varlink.DecodeParams(c.Parameters, append(l.fields(),
		varlink.StrField("source", &req.Source, true), varlink.StrField("destination", &req.Destination, false),
		varlink.BoolField("readOnly", &req.ReadOnly), varlink.BoolField("mkdir", &req.Mkdir))...)
	if err != nil {
		return replyError(ctx, c, err)
	}
	if err := f.mgr.BindMount(ctx, callerOf(ctx, l.interactive), l.selector(), req); err != nil {
		return replyError(ctx, c, err)
	}
	return replyEmpty(ctx, c)
}

// copy serves CopyFrom and CopyTo. The copy is an operation bound to the
// client: it ends when the client hangs up.
func (f *machineIface) copy(ctx context.Context, c *varlink.Call) error {
	var l lookup
	var req service.CopyRequest
	err := varlink.DecodeParams(c.Parameters, append(l.fields(),
		varlink.StrField("source", &req.Source, true), varlink.StrField("destination", &req.Destination, false),
		varlink.BoolField("replace", &req.Replace))...)
	if err != nil {
		return replyError(ctx, c, err)
	}
	opCtx, cancel := untilHangup(ctx, c)
	defer cancel()
	run := f.mgr.CopyFrom
	if c.Member == "CopyTo" {
		run = f.mgr.CopyTo
	}
	if err := run(opCtx, callerOf(ctx, l.interactive), l.selector(), req); err != nil {
		return replyError(ctx, c, err)
	}
	return replyEmpty(ctx, c)
}

// untilHangup is ctx ended also when the client hangs up. A oneway call's
// client may hang up at once and still want the work done.
func untilHangup(ctx context.Context, c *varlink.Call) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	if c.IsOneway() {
		return ctx, cancel
	}
	done := c.Done()
	go func() {
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (f *machineIface) openRootDirectory(ctx context.Context, c *varlink.Call) error {
	var l lookup
	if err := varlink.DecodeParams(c.Parameters, l.fields()...); err != nil {
		return replyError(ctx, c, err)
	}
	root, err := f.mgr.OpenRootDirectory(ctx, callerOf(ctx, l.interactive), l.selector())
	if err != nil {
		return replyError(ctx, c, err)
	}
	defer root.Close()
	return c.ReplyWithFDs(ctx, struct {
		FD int `json:"fileDescriptor"`
	}{0}, []*os.File{root})
}

// machineJSON is one List reply, fields in IDL order; empty and unknown values
// are left out, never sent as null.
type machineJSON struct {
	Name              string         `json:"name"`
	ID                string         `json:"id,omitempty"`
	Service           string         `json:"service,omitempty"`
	Class             string         `json:"class"`
	Leader            *processIDJSON `json:"leader,omitempty"`
	Supervisor        *processIDJSON `json:"supervisor,omitempty"`
	RootDirectory     string         `json:"rootDirectory,omitempty"`
	Unit              string         `json:"unit,omitempty"`
	Timestamp         *timestampJSON `json:"timestamp,omitempty"`
	VSockCID          *uint32        `json:"vSockCid,omitempty"`
	SSHAddress        string         `json:"sshAddress,omitempty"`
	SSHPrivateKeyPath string         `json:"sshPrivateKeyPath,omitempty"`
	ControlAddress    string         `json:"controlAddress,omitempty"`
	Addresses         []addressJSON  `json:"addresses,omitempty"`
	OSRelease         []string       `json:"OSRelease,omitempty"`
	UIDShift          *uint32        `json:"UIDShift,omitempty"`
	Subgroup          string         `json:"subgroup,omitempty"`
	UID               *uint32        `json:"UID,omitempty"`
}

type processIDJSON struct {
	PID     int    `json:"pid"`
	PIDFDID uint64 `json:"pidfdId,omitempty"`
	BootID  string `json:"bootId,omitempty"`
}

type timestampJSON struct {
	Realtime  uint64 `json:"realtime,omitempty"`
	Monotonic uint64 `json:"monotonic,omitempty"`
}

type addressJSON struct {
	IfIndex int   `json:"ifindex,omitempty"`
	Family  int   `json:"family"`
	Address []int `json:"address"`
}

func toJSON(mi service.MachineInfo, md *service.Metadata) machineJSON {
	j := machineJSON{
		Name:              mi.Name,
		Service:           mi.Service,
		Class:             string(mi.Class),
		RootDirectory:     mi.RootDirectory,
		Unit:              mi.Unit,
		SSHAddress:        mi.SSHAddress,
		SSHPrivateKeyPath: mi.SSHPrivateKeyPath,
		ControlAddress:    mi.ControlAddress,
		Subgroup:          mi.Subgroup,
	}
	if !mi.Restricted {
		uid := mi.UID
		j.UID = &uid
	}
	if mi.HasID() {
		j.ID = hex.EncodeToString(mi.ID[:])
	}
	if mi.Leader.PID > 0 {
		j.Leader = &processIDJSON{mi.Leader.PID, mi.Leader.PIDFDID, mi.Leader.BootID}
	}
	if mi.Supervisor.PID > 0 {
		j.Supervisor = &processIDJSON{mi.Supervisor.PID, mi.Supervisor.PIDFDID, mi.Supervisor.BootID}
	}
	if mi.Timestamp != (service.Timestamp{}) {
		j.Timestamp = &timestampJSON{mi.Timestamp.Realtime, mi.Timestamp.Monotonic}
	}
	if mi.VSockCID != service.VSockCIDAny {
		v := mi.VSockCID
		j.VSockCID = &v
	}
	if md != nil {
		for _, a := range md.Addresses {
			b := make([]int, len(a.Addr))
			for i, x := range a.Addr {
				b[i] = int(x)
			}
			j.Addresses = append(j.Addresses, addressJSON{a.IfIndex, a.Family, b})
		}
		j.OSRelease = md.OSRelease
		j.UIDShift = md.UIDShift
	}
	return j
}

func (f *machineIface) list(ctx context.Context, c *varlink.Call) error {
	var l lookup
	var mode string
	fields := append(l.fields(), varlink.StrField("acquireMetadata", &mode, false))
	if err := varlink.DecodeParams(c.Parameters, fields...); err != nil {
		return replyError(ctx, c, err)
	}
	var metadata, graceful bool
	switch mode {
	case "", "no":
	case "yes":
		metadata = true
	case "graceful":
		metadata, graceful = true, true
	default:
		return replyError(ctx, c, &varlink.ParamError{Name: "acquireMetadata"})
	}
	caller := callerOf(ctx, l.interactive)
	viewer := f.mgr.Viewer(ctx, caller, l.name)
	// metadataOf gathers what acquireMetadata asks for, for machines the
	// caller may inspect; for others it is left out.
	metadataOf := func(mi service.MachineInfo) (*service.Metadata, error) {
		if !metadata || mi.Restricted {
			return nil, nil
		}
		md, err := f.mgr.Metadata(ctx, mi, graceful)
		return &md, err
	}

	if l.name != "" || l.pid.set {
		mi, err := f.mgr.Get(caller, l.selector())
		if err != nil {
			return replyError(ctx, c, err)
		}
		mi = viewer.View(mi)
		md, err := metadataOf(mi)
		if err != nil {
			return replyError(ctx, c, err)
		}
		return c.Reply(ctx, toJSON(mi, md))
	}
	if !c.WantsMore() {
		return c.ReplyError(ctx, varlink.NameExpectedMore, struct{}{})
	}
	all := f.mgr.List()
	if len(all) == 0 {
		return replyError(ctx, c, service.ErrNoSuchMachine)
	}
	for i, mi := range all {
		mi = viewer.View(mi)
		md, err := metadataOf(mi)
		if err != nil {
			return replyError(ctx, c, err)
		}
		c.Continues = i < len(all)-1
		if err := c.Reply(ctx, toJSON(mi, md)); err != nil {
			return err // the connection is gone
		}
	}
	return nil
}
