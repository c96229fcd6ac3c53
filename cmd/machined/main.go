package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/machined-go/machined/authz/polkit"
	"github.com/machined-go/machined/containerbus"
	"github.com/machined-go/machined/copyhelper"
	"github.com/machined-go/machined/dbusshim/busconn"
	"github.com/machined-go/machined/dbusshim/machine1"
	"github.com/machined-go/machined/internal/loglevel"
	"github.com/machined-go/machined/service"
	"github.com/machined-go/machined/varlink"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0"

type options struct {
	runtimeDir  string
	user        bool
	bus         string
	units       string
	cgroupRoot  string
	logLevel    string
	limits      varlink.Limits
	userdbDir   string
	hookDir     string
	procs       int
	stopTimeout time.Duration
	maxPerUID   int
	showVersion bool

	imageSearchPath, imagePool string
}

func parseFlags(args []string) (options, error) {
	var o options
	o.limits = varlink.DefaultLimits()
	fs := flag.NewFlagSet("machined", flag.ContinueOnError)
	fs.StringVar(&o.runtimeDir, "runtime-dir", "", "runtime directory holding systemd/machine/ and systemd/machines/ (default /run, or $XDG_RUNTIME_DIR with --user)")
	fs.BoolVar(&o.user, "user", false, "run as a per-user instance (no .host machine)")
	fs.StringVar(&o.bus, "bus", "auto", "D-Bus side: auto (system bus when reachable, the user bus with --user), none, system ($DBUS_SYSTEM_BUS_ADDRESS or the standard socket), or a bus ADDRESS")
	fs.StringVar(&o.userdbDir, "userdb-dir", "", "directory of the userdb socket io.systemd.Machine (default RUNTIME-DIR/systemd/userdb; none with --user); \"none\" disables it")
	fs.StringVar(&o.hookDir, "resolve-hook-dir", "", "directory of the resolver hook socket io.systemd.Machine (default RUNTIME-DIR/systemd/resolve.hook; none with --user); \"none\" disables it")
	fs.StringVar(&o.units, "units", "auto", "unit backend: auto (systemd where it runs, on the system bus; else cgroup), systemd, cgroup or none")
	fs.StringVar(&o.cgroupRoot, "cgroup-root", "", "cgroup2 mount point for the cgroup backend (default: detected)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, notice, warning or err")
	fs.IntVar(&o.limits.MaxConnections, "max-connections", o.limits.MaxConnections, "Varlink connections at most, per socket")
	fs.IntVar(&o.limits.MaxConnectionsPerUID, "max-connections-per-uid", o.limits.MaxConnectionsPerUID, "Varlink connections at most per unprivileged user, per socket")
	fs.IntVar(&o.limits.ReservedConnections, "reserved-connections", o.limits.ReservedConnections, "of --max-connections, how many only root and the daemon's own user may use")
	fs.IntVar(&o.limits.MaxPendingInput, "max-pending-input", o.limits.MaxPendingInput, "bytes buffered at most for incomplete Varlink messages, per socket; one unprivileged user may hold a quarter, at least one maximal message")
	fs.DurationVar(&o.limits.IdleTimeout, "idle-timeout", o.limits.IdleTimeout, "close Varlink connections idle for this long (0: never)")
	fs.DurationVar(&o.stopTimeout, "stop-timeout", 10*time.Second, "SIGTERM-to-SIGKILL grace period when terminating machines")
	fs.IntVar(&o.maxPerUID, "max-machines-per-uid", 128, "machines one non-root user may have registered at once (0: no cap)")
	fs.IntVar(&o.procs, "procs", 1, "Go scheduler threads running at once (GOMAXPROCS); 0 means one per CPU")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	fs.StringVar(&o.imageSearchPath, "image-search-path", "", "colon-separated directories searched for images, first hit of a name wins (default: upstream's system path, or the user's with --user; the pool alone when --image-pool is given)")
	fs.StringVar(&o.imagePool, "image-pool", "", "directory clones go to and pool limits apply to (default /var/lib/machines, ~/.local/state/machines with --user)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if !searchPathFlag(o.imageSearchPath) || o.imagePool != "" && !filepath.IsAbs(o.imagePool) {
		return o, fmt.Errorf("--image-search-path and --image-pool take absolute directories")
	}
	if o.maxPerUID < 0 {
		return o, fmt.Errorf("--max-machines-per-uid must not be negative")
	}
	if err := checkLimits(o.limits); err != nil {
		return o, err
	}
	if o.runtimeDir == "" {
		o.runtimeDir = "/run"
		if o.user {
			o.runtimeDir = os.Getenv("XDG_RUNTIME_DIR")
			if o.runtimeDir == "" {
				return o, errors.New("--user needs $XDG_RUNTIME_DIR or --runtime-dir")
			}
		}
	}
	if o.userdbDir == "" && !o.user {
		o.userdbDir = filepath.Join(o.runtimeDir, "systemd", "userdb")
	}
	// The system's resolver asks the system instance only.
	if o.hookDir == "" && !o.user {
		o.hookDir = filepath.Join(o.runtimeDir, "systemd", "resolve.hook")
	}
	return o, nil
}

// raiseFDLimit lifts the soft RLIMIT_NOFILE to the hard one: every machine
// holds a pidfd and every client a socket, and the soft default (1024) would be
// reached long before the hard one. The Go runtime normally did this already;
// setting it only when it did not leaves Go's restoring of the original soft
// limit for the programs we spawn in place.
func raiseFDLimit(log *slog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("cannot read the fd limit", "err", err)
		return
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			log.Warn("cannot raise the fd limit", "soft", lim.Cur, "hard", lim.Max, "err", err)
			return
		}
		lim = raised
	}
	log.Debug("fd limit", "soft", lim.Cur, "hard", lim.Max)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == copyhelper.Arg {
		os.Exit(copyhelper.Main())
	}
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "machined:", err)
		os.Exit(2)
	}
	if o.showVersion {
		fmt.Println("machined", version)
		return
	}
	if path := os.Getenv("MACHINED_CPUPROFILE"); path != "" {
		// For benchmarking the daemon in place: the profile is written on exit.
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	if path := os.Getenv("MACHINED_ALLOCPROFILE"); path != "" {
		// Every allocation since start, written on exit: what feeds the GC.
		runtime.MemProfileRate = 4096
		defer writeAllocProfile(path)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "machined:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func writeAllocProfile(path string) {
	// The in-use figures are those of the last collection: one now makes them
	// what is still reachable at exit, which is what a leak hunt needs.
	runtime.GC()
	if f, err := os.Create(path); err == nil {
		pprof.Lookup("allocs").WriteTo(f, 0)
		f.Close()
	}
}

func run(o options) error {
	lock, err := takeInstanceLock(o.runtimeDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	setProcs(o.procs)
	log, level, logh, err := setupLogging(o.logLevel)
	if err != nil {
		return err
	}
	syscall.Umask(0o022)
	raiseFDLimit(log)

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()

	// The D-Bus side: the shim's handler goes on the connection from the
	// start, and answers "starting up" until the core is ready.
	shim := newShim(o, log, level, logh)
	bus, err := connectBus(o, shim, log)
	if err != nil {
		return err
	}
	if bus != nil {
		defer bus.Close()
	}
	unitHost := &realHost{ctx: ctx, o: o, log: log}
	units, err := pickUnits(o.units, o.user, unitHost, log)
	if err != nil {
		return err
	}
	if unitHost.apiBus != nil {
		defer unitHost.apiBus.Close()
		unitHost.watchAPIBus(ctx)
	}
	pool, poolPath := imagePool(o)
	trimmer := newMemTrimmer(trimQuiet, trimMinSlack)
	defer trimmer.stop()
	mgr, err := service.New(service.Config{
		Images:            pool,
		ImagePoolPath:     poolPath,
		StateDir:          filepath.Join(o.runtimeDir, "systemd", "machines"),
		Units:             units,
		Authorizer:        pickAuthorizer(ctx, o, bus, log),
		HostMachine:       !o.user,
		UserScope:         o.user,
		StopTimeout:       o.stopTimeout,
		Logger:            log,
		MaxMachinesPerUID: o.maxPerUID,
		// Login and shell ask the machine's own service manager; for .host,
		// the one on the system bus, whatever bus the shim serves.
		ContainerBus: containerbus.New(busconn.SystemBusAddress()),
		// Copies run in a helper: this binary, started again.
		TreeCopier: copyhelper.New("/proc/self/exe"),
		Changed:    trimmer.changed,
	})
	if err != nil {
		return err
	}
	defer mgr.Close()

	// The sockets serve from here on, the restore below included: a call
	// waits for it instead of its client finding no socket.
	sv := newVarlinkSide(o, mgr, level, log, trimmer.changed)
	if conn := sv.activatedConn(); conn != nil {
		// varlinkctl exec: handed us one connected client: serve it, then stop.
		sv.restore()
		sv.machine.ServeConn(ctx, conn)
		return nil
	}
	// Our listeners close on every return (the bus name taken, say), so no
	// dead socket file stays behind.
	defer sv.close()
	if err := sv.serve(ctx); err != nil {
		return err
	}
	sv.restore()
	logStatsOnSIGUSR1(ctx, log, mgr, map[string]*varlink.Server{"machine": sv.machine, "userdb": sv.userdb, "resolve.hook": sv.hook})
	if bus != nil {
		if err := shim.Start(ctx, bus, mgr); err != nil {
			return fmt.Errorf("D-Bus: %w", err)
		}
		defer shim.Close()
		log.Info("serving " + machine1.BusName + " on D-Bus")
		go func() {
			<-bus.Context().Done()
			if ctx.Err() == nil {
				log.Warn("lost the D-Bus connection; serving Varlink only")
			}
		}()
	}

	varlink.Notify("READY=1\nSTATUS=Processing requests...")
	select {
	case <-ctx.Done():
	case err = <-sv.errc:
		log.Error("varlink server stopped", "err", err)
	}
	varlink.Notify("STOPPING=1")
	log.Info("shutting down")
	sv.shutdown()
	return err
}

// setProcs sets GOMAXPROCS from --procs. The daemon is I/O-bound: with one P,
// a request never bounces between CPUs on its way through the netpoller
// (docs/BENCHMARKS.md). An explicit GOMAXPROCS in the environment wins.
func setProcs(procs int) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	if procs <= 0 {
		procs = runtime.NumCPU()
	}
	runtime.GOMAXPROCS(procs)
}

// setupLogging makes the daemon's logger, at the level --log-level names.
func setupLogging(name string) (*slog.Logger, *slog.LevelVar, *lineHandler, error) {
	lvl, ok := loglevel.Parse(name)
	if !ok {
		return nil, nil, nil, fmt.Errorf("unknown log level %q", name)
	}
	level := new(slog.LevelVar)
	level.Set(lvl)
	logh := newLineHandler(newStderrWriter(os.Stderr), level)
	logh.native = journalFor(os.Stderr)
	log := slog.New(logh)
	slog.SetDefault(log)
	return log, level, logh, nil
}

// newShim is the org.freedesktop.machine1 server, nil with --bus none.
func newShim(o options, log *slog.Logger, level *slog.LevelVar, logh *lineHandler) *machine1.Server {
	if o.bus == "none" {
		return nil
	}
	return machine1.New(machine1.Config{
		Logger:           log,
		LogLevel:         level,
		LogTarget:        logh.Target,
		SetLogTarget:     logh.SetTarget,
		SyslogIdentifier: filepath.Base(os.Args[0]),
	})
}

// pickAuthorizer is polkit when it is on the shim's bus at start, else nil:
// the core's own rule then applies.
func pickAuthorizer(ctx context.Context, o options, bus *busconn.Conn, log *slog.Logger) service.Authorizer {
	switch {
	case o.user:
		// Polkit is not consulted by a per-user instance.
	case bus != nil && polkit.Available(ctx, bus.Conn):
		log.Info("asking polkit about unprivileged callers")
		return polkit.New(bus.Conn, log)
	default:
		log.Info("polkit not available: only root and a machine's owner may manage it")
	}
	return nil
}

// connectBus returns the daemon's one bus connection, guarded by busconn and
// answering with the shim's handler, or nil with --bus none. With auto an
// unreachable bus is logged once and the daemon runs Varlink-only; with an
// explicit bus it is an error.
func connectBus(o options, shim *machine1.Server, log *slog.Logger) (*busconn.Conn, error) {
	var addr string
	switch o.bus {
	case "none":
		return nil, nil
	case "auto":
		addr = busconn.SystemBusAddress()
		if o.user {
			addr = userBusAddress()
		}
	case "system":
		addr = busconn.SystemBusAddress()
	default:
		addr = o.bus
	}
	conn, err := busconn.Dial(addr, busconn.Config{AcceptFDs: machine1.AcceptFDs, Calls: shim, Logger: log})
	if err != nil {
		if o.bus == "auto" {
			log.Warn("D-Bus not reachable, running Varlink-only", "bus", addr, "err", err)
			return nil, nil
		}
		return nil, fmt.Errorf("connect to D-Bus %s: %w", addr, err)
	}
	return conn, nil
}

// userBusAddress is $DBUS_SESSION_BUS_ADDRESS, or the bus socket in
// $XDG_RUNTIME_DIR.
func userBusAddress() string {
	if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" {
		return a
	}
	return "unix:path=" + filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "bus")
}
