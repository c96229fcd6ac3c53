package service

import (
	"log/slog"
	"sync"
	"time"

	"github.com/machined-go/machined/service/ops"
	"github.com/machined-go/machined/service/persist"
	"github.com/machined-go/machined/service/proc"
)

// Config is what the Manager needs from its environment.
type Config struct {
	// StateDir is where machine records are persisted (/run/systemd/machines).
	StateDir string
	// Units creates and stops machine units. Nil: allocateUnit is NotSupported and
	// units are derived from /proc/PID/cgroup.
	Units Units
	// Authorizer is consulted for unprivileged callers; nil means no polkit.
	Authorizer Authorizer
	// HostMachine adds the synthesized .host machine (system scope).
	HostMachine bool
	// UserScope makes this a per-user instance: it serves only its own user
	// and root (see Admits), and only its own user may register machines.
	UserScope bool
	// StopTimeout is how long a machine without a unit gets between SIGTERM and
	// SIGKILL on Terminate. Zero means 10 s.
	StopTimeout time.Duration
	// MaxMachinesPerUID caps the machines one unprivileged uid may have
	// registered at once; 0 means no cap. Every machine pins its leader with a
	// pidfd, so without a cap one local user can exhaust the daemon's fds and
	// lock everyone else out. Root and our own uid are never capped.
	MaxMachinesPerUID int
	// Images is the image pool the image methods serve; nil answers them
	// NotSupported. ImagePoolPath is its pool directory, as PoolPath shows
	// it ("" = /var/lib/machines).
	Images        ImagePool
	ImagePoolPath string
	// ContainerBus starts getty and shell units through a machine's service
	// manager (login, shell). Nil: only containers without a bus get them.
	ContainerBus ContainerBus
	// TreeCopier makes the copies of CopyFrom and CopyTo; nil copies in the
	// daemon's own process.
	TreeCopier TreeCopier
	Logger     *slog.Logger
	// Changed, when set, is called after each machine joins or leaves the
	// registry, with the registry lock held: it must not block. The daemon
	// uses it to give memory back once a burst of changes is over.
	Changed func()
}

// Manager is the machine registry. All methods are safe for concurrent use: the
// D-Bus front end runs every call on its own goroutine, in no particular order.
//
// Lock order: mu, then ids.mu. Slow work (unit creation, metadata, namespace
// entry) runs without mu, on names and leaders reserved in pending*.
type Manager struct {
	cfg   Config
	log   *slog.Logger
	state persist.Dir
	ids   idIndex // readable without mu: userdb answers never wait on the registry
	exits *exitWatcher
	ops   *ops.Registry // copies, image work: bounded, cancelled with their machine

	mu             sync.Mutex
	machines       machineIndex[string] // by name, incl. .host
	byLeader       machineIndex[int]    // by leader PID (started machines only)
	byUnit         machineIndex[string] // machines that own their whole unit
	pendingNames   map[string]bool      // registrations in flight, between the two locked phases
	pendingLeaders map[int]bool
	perUID         map[uint32]int // machines per registering uid: started, and in flight
	subs           map[*Watch]struct{}
	watchesOf      map[uint32]int // watches held per unprivileged uid (WatchAs)
	unprivWatches  int            // and by all of them
	namesChanged   chan struct{}  // closed when a machine comes or goes; nil until WatchHostNames asks
	closed         bool
	wg             sync.WaitGroup // leader watchers
	stop           chan struct{}
}

// New creates the Manager and its state directory; Restore loads saved machines.
func New(cfg Config) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	m := &Manager{
		cfg:            cfg,
		log:            cfg.Logger,
		ops:            ops.NewRegistry(ops.Max),
		state:          persist.Dir{Path: cfg.StateDir},
		machines:       newMachineIndex(func(mc *machine) string { return mc.name }),
		byLeader:       newMachineIndex(func(mc *machine) int { return mc.leader.PID }),
		byUnit:         newMachineIndex(func(mc *machine) string { return mc.unit }),
		pendingNames:   map[string]bool{},
		pendingLeaders: map[int]bool{},
		perUID:         map[uint32]int{},
		subs:           map[*Watch]struct{}{},
		watchesOf:      map[uint32]int{},
		stop:           make(chan struct{}),
	}
	if err := m.state.Ensure(); err != nil {
		return nil, err
	}
	var err error
	if m.exits, err = newExitWatcher(m.leaderExited); err != nil {
		return nil, err
	}
	if cfg.HostMachine {
		m.machines.set(hostMachine(m.log))
	}
	return m, nil
}

// Close stops the leader watchers. Machines stay registered on disk: a restarted
// daemon picks them up again.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	close(m.stop)
	m.closeWatchesLocked()
	m.mu.Unlock()
	m.stopOperations()
	m.exits.close()
	m.wg.Wait()
}

// List returns every machine, .host included, sorted by name.
func (m *Manager) List() []MachineInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	sorted := m.sortedLocked()
	out := make([]MachineInfo, 0, len(sorted))
	for _, mc := range sorted {
		out = append(out, mc.snapshot())
	}
	return out
}

// Brief is what a listing of many machines shows of each.
type Brief struct {
	Name    string
	Class   Class
	Service string
}

// ListBrief is List reduced to Brief: without copying whole snapshots, for
// listings (D-Bus ListMachines) that show no more.
func (m *Manager) ListBrief() []Brief {
	m.mu.Lock()
	defer m.mu.Unlock()
	sorted := m.sortedLocked()
	out := make([]Brief, len(sorted))
	for i, mc := range sorted {
		out[i] = Brief{Name: mc.name, Class: classOfKind[mc.class], Service: mc.service()}
	}
	return out
}

// sortedLocked returns the machines in name order, the registry's own slice:
// it must not be kept beyond m.mu. m.mu must be held.
func (m *Manager) sortedLocked() []*machine { return m.machines.all() }

// Count returns how many machines are registered, .host included.
func (m *Manager) Count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.machines.len()
}

// Units returns the configured unit backend's name, for logs.
func (m *Manager) UnitsBackend() string {
	if m.cfg.Units == nil {
		return "none"
	}
	return m.cfg.Units.Name()
}

// bootID is fetched lazily: it never changes while we run.
var bootID = sync.OnceValue(func() string {
	id, _ := proc.BootID()
	return id
})

func processID(ref *proc.PidRef) ProcessID {
	if ref == nil {
		return ProcessID{}
	}
	p := ProcessID{PID: ref.PID, PIDFDID: ref.ID}
	if ref.ID != 0 {
		p.BootID = bootID()
	}
	return p
}
