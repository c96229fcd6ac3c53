package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/machined-go/machined/service/proc"
)

type config struct {
	quick        bool
	reps         int
	dur          time.Duration
	listSizes    []int
	userdbSizes  []int
	dbusListSize int
	startup      bool
	conns        int
	pairLeaders  int
	keys         int
	exitWait     time.Duration
	daemons      []string
	ours         string
	oursBus      string
	trixieRoot   string
	doc          string
	svg          string
	nss          bool
	lockPath     string
	lockWait     time.Duration
	duel         bool
	duelReps     int
	copy         bool
	shellRounds  int // shells timed per container; 0: no shell workloads
	shellStrace  bool
	images       int // directory images listed; 0: no image workloads
	cloneMiB     int // size of the image cloned
	pairSizes    []int
	churnRounds  int
	churnMachs   int
}

// aliasFlag is a second name for a flag, kept so that older command lines
// still work.
type aliasFlag struct{ f *flag.Flag }

func (a aliasFlag) String() string {
	if a.f == nil {
		return ""
	}
	return a.f.Value.String()
}

func (a aliasFlag) Set(s string) error { return a.f.Value.Set(s) }

func parseSizes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad size %q", f)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench-compare", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: bench-compare [flags]\n\n%s\nflags:\n", usageText)
		fs.PrintDefaults()
	}
	fs.BoolVar(&c.duel, "duel", false, "only the D-Bus workloads, with all daemons running at once and their repetitions interleaved; prints the figures, writes no docs")
	quick := fs.Bool("quick", false, "small sizes and short repetitions (a few minutes); does not write the docs unless -doc/-svg are given")
	reps := fs.Int("reps", 3, "repetitions per figure (the table shows the median)")
	dur := fs.Duration("duration", time.Second, "length of one repetition of a rate or latency workload")
	list := fs.String("list-sizes", "100,500,10000", "machine counts for Varlink List latency")
	udb := fs.String("userdb-sizes", "2,500,10000", "machine counts for the userdb lookups")
	gop := fs.String("pair-sizes", "10,500", "machine counts present during the Varlink Register+Unregister workloads, which run interleaved with every daemon up at once")
	fs.Var(aliasFlag{fs.Lookup("pair-sizes")}, "go-pair-sizes", "the old name of -pair-sizes")
	fs.IntVar(&c.churnRounds, "churn-rounds", 10, "rounds of registering and unregistering -churn-machines machines for the RSS-after-churn rows (0: none)")
	fs.IntVar(&c.churnMachs, "churn-machines", 1000, "machines registered (then unregistered) per churn round; at most -pair-leaders")
	fs.IntVar(&c.dbusListSize, "dbus-list-size", 500, "machine count for D-Bus ListMachines (0: no D-Bus workloads)")
	fs.IntVar(&c.duelReps, "duel-reps", 7, "repetitions per daemon of the D-Bus workloads, which run interleaved with all daemons up at once")
	fs.IntVar(&c.images, "images", 1000, "directory images for the image listing workloads (0: no image workloads)")
	fs.IntVar(&c.cloneMiB, "clone-mib", 1024, "size in MiB of the directory image the clone workloads copy")
	fs.BoolVar(&c.startup, "startup", true, "measure start-up time with the largest machine count persisted")
	fs.IntVar(&c.conns, "conns", 8, "connections of the parallel Register+Unregister workload")
	fs.IntVar(&c.pairLeaders, "pair-leaders", 4096, "leaders the Register+Unregister workloads take in turn (all connections together)")
	fs.IntVar(&c.keys, "keys", 64, "machines sampled at random for the userdb lookups")
	fs.DurationVar(&c.exitWait, "exit-wait", 5*time.Second, "how long to wait for a machine to go after its leader exits")
	ds := fs.String("daemons", "252,257,ours", "daemons to run, in this order")
	fs.StringVar(&c.ours, "ours", "bin/machined", "our daemon's binary")
	fs.StringVar(&c.oursBus, "ours-bus", "private", "our daemon's D-Bus side: none, private (a bus of its own, like the upstreams'), or a bus address")
	fs.StringVar(&c.trixieRoot, "trixie-root", envOr("TRIXIE_ROOT", "/var/tmp/trixie-root"), "Debian 13 tree with machined 257 (tests/setup/install-deps.sh)")
	doc := fs.String("doc", "docs/BENCHMARKS.md", "markdown file whose generated section gets the table (\"\": none)")
	svg := fs.String("svg", "docs/bench-compare-userdb.svg", "chart file (\"\": none)")
	fs.StringVar(&upstreamLogLevel, "upstream-log-level", "info", "SYSTEMD_LOG_LEVEL of the upstream daemons (their logs go to the scratch directory)")
	fs.StringVar(&keepLogs, "logs", "", "directory to keep the daemons' logs in (default: dropped)")
	fs.BoolVar(&c.copy, "copy", true, "measure copy-to/copy-from of a 1 GiB tree (writes about 3 GiB to the scratch directory)")
	shell := fs.Bool("shell", true, "measure machinectl shell latency into a booted Debian 12 container and a busybox one (builds the cached tree of tests/setup/debian-tree.sh on first use)")
	fs.IntVar(&c.shellRounds, "shell-rounds", 10, "shells timed per container (after one not counted)")
	fs.BoolVar(&c.shellStrace, "shell-strace", false, "after the shell rows, log where a shell's time goes: 5 shells with machinectl under strace split at the call, the reply and the hang-up, then strace -c -f of the daemon for one (traces kept in -logs)")
	fs.BoolVar(&c.nss, "nss", true, "measure lookups through glibc NSS (needs the stock userdb path)")
	fs.StringVar(&c.lockPath, "lock", "/tmp/stock-paths.lock", "lock file guarding the stock paths, held for the whole run")
	fs.DurationVar(&c.lockWait, "lock-wait", 15*time.Minute, "how long to wait for the lock")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c.quick, c.reps, c.dur, c.doc, c.svg = *quick, *reps, *dur, *doc, *svg
	if c.quick {
		if !set["list-sizes"] {
			*list = "100,500"
		}
		if !set["userdb-sizes"] {
			*udb = "2,100,500"
		}
		if !set["duration"] {
			c.dur = 300 * time.Millisecond
		}
		if !set["duel-reps"] {
			c.duelReps = 3
		}
		if !set["shell-rounds"] {
			c.shellRounds = 3
		}
		if !set["doc"] {
			c.doc = ""
		}
		if !set["svg"] {
			c.svg = ""
		}
	}
	if c.duel {
		*list, *udb, *gop, c.nss, c.startup, c.doc, c.svg = "", "", "", false, false, "", ""
		c.images = 0
		c.churnRounds = 0
		if set["reps"] && !set["duel-reps"] {
			c.duelReps = c.reps
		}
	}
	if !*shell || c.duel {
		c.shellRounds = 0
	}
	var err error
	if c.listSizes, err = parseSizes(*list); err != nil {
		return c, err
	}
	if c.userdbSizes, err = parseSizes(*udb); err != nil {
		return c, err
	}
	if c.pairSizes, err = parseSizes(*gop); err != nil {
		return c, err
	}
	for d := range strings.SplitSeq(*ds, ",") {
		switch d = strings.TrimSpace(d); d {
		case "252", "257", "ours":
			c.daemons = append(c.daemons, d)
		case "":
		default:
			return c, fmt.Errorf("unknown daemon %q (252, 257, ours)", d)
		}
	}
	if c.reps < 1 || c.conns < 1 || c.pairLeaders < 1 || c.keys < 1 {
		return c, errors.New("-reps, -conns, -pair-leaders and -keys must be at least 1")
	}
	if c.shellRounds < 0 {
		return c, errors.New("-shell-rounds must be at least 0")
	}
	if c.churnRounds < 0 || (c.churnRounds > 0 && (c.churnMachs < 1 || c.churnMachs > c.pairLeaders)) {
		return c, errors.New("-churn-rounds must be at least 0 and -churn-machines between 1 and -pair-leaders")
	}
	if c.maxLevel() > maxUserNSLeaders {
		return c, fmt.Errorf("at most %d machines fit the uid scheme", maxUserNSLeaders)
	}
	return c, nil
}

const usageText = `Runs the same workloads against upstream systemd-machined 252 (Debian 12, D-Bus),
upstream 257 (the Debian 13 tree of make deps, Varlink and D-Bus) and ours
(bin/machined), side by side, and writes the table and a chart into docs/.
Needs root. See docs/BENCHMARKS.md.`

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// cleanups run once, in reverse order, at the end or on a signal.
var (
	cleanupMu   sync.Mutex
	cleanups    []func()
	cleaned     bool
	interrupted atomic.Bool
)

// atExit registers f to run at the end; after the clean-up has begun (a
// signal), it runs f at once.
func atExit(f func()) {
	cleanupMu.Lock()
	if cleaned {
		cleanupMu.Unlock()
		f()
		return
	}
	cleanups = append(cleanups, f)
	cleanupMu.Unlock()
}

func runCleanups() {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	if cleaned {
		return
	}
	cleaned = true
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-compare:", err)
		os.Exit(2)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sig
		interrupted.Store(true)
		logf("%v: cleaning up", s)
		runCleanups()
		os.Exit(130)
	}()
	err = run(cfg)
	runCleanups()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-compare:", err)
		os.Exit(1)
	}
}

func run(cfg config) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (cgroups, user namespaces, mounts, the stock userdb path)")
	}
	cgRoot, err := proc.Cgroup2Root()
	if err != nil {
		return err
	}
	// Every run holds the lock, not only those that use the stock paths: the
	// sweep below kills every bench-*.scope, which would be another run's
	// leaders if two ran at once.
	if err := takeLock(cfg.lockPath, cfg.lockWait); err != nil {
		return err
	}
	if uses252 := slices.Contains(cfg.daemons, "252"); uses252 || cfg.nss {
		if err := checkStockPaths(); err != nil {
			return err
		}
	}
	if n := sweepStaleScopes(cgRoot); n > 0 {
		logf("removed %d bench-*.scope cgroups left by an earlier run", n)
	}

	scratch, err := os.MkdirTemp("", "bench-compare-")
	if err != nil {
		return err
	}
	atExit(func() { os.RemoveAll(scratch) })
	if err := setupImages(cfg, scratch); err != nil {
		return fmt.Errorf("image workloads: %w", err)
	}
	farmBin, err := buildHelper(scratch, "leaderfarm")
	if err != nil {
		return err
	}
	nssBin, err := buildHelper(scratch, "nsslookup")
	if err != nil {
		return err
	}
	echoBin, err := buildHelper(scratch, "echoserver")
	if err != nil {
		return err
	}
	echo, err := startEcho(echoBin, scratch)
	if err != nil {
		return err
	}
	atExit(echo.close)
	f, err := newFarm(farmBin, cgRoot)
	if err != nil {
		return err
	}
	atExit(f.close)

	rep := &report{Daemons: cfg.daemons}
	b := &bench{cfg: cfg, rep: rep, farm: f, nssBin: nssBin, echo: echo, logf: logf, scratch: scratch}
	b.plan()
	loads := []string{"start " + loadAvg()}
	started := time.Now()

	logf("starting %d leaders in user namespaces and %d for the pair workloads", cfg.maxLevel(), cfg.pairLeaders)
	t := time.Now()
	if b.userLeaders, err = f.spawnMany("u", cfg.maxLevel(), uidBase); err != nil {
		return err
	}
	if b.pairPool, err = f.spawnMany("p", cfg.pairLeaders, nil); err != nil {
		return err
	}
	if b.goLeaders, err = f.spawnMany("g", goCycleLeaders, nil); err != nil {
		return err
	}
	logf("leaders up in %s", time.Since(t).Round(time.Millisecond))

	if cfg.duel {
		return b.runDuel(scratch)
	}
	var versions []string
	for _, key := range cfg.daemons {
		if interrupted.Load() {
			break
		}
		// Let the previous daemon's teardown (thousands of pidfds, a mount
		// namespace, a tmpfs) finish before timing anything.
		time.Sleep(settle)
		logf("=== %s === (load average %s)", key, loadAvg())
		loads = append(loads, key+" "+loadAvg())
		d, err := startDaemon(cfg, key, scratch)
		if err != nil {
			logf("%s: cannot start: %v", key, err)
			b.fillNotRun(key, "could not start: "+firstLineOf(err.Error()))
			versions = append(versions, key+": could not start: "+firstLineOf(err.Error()))
			continue
		}
		versions = append(versions, versionLine(d))
		logf("%s: %s, pid %d", key, d.label, d.pid())
		if err := b.run(d); err != nil {
			logf("%s: %v", key, err)
			b.fillNotRun(key, "stopped early: "+firstLineOf(err.Error()))
		}
		d.shutdown()
	}
	if len(cfg.pairSizes) > 0 && !interrupted.Load() {
		time.Sleep(settle)
		logf("=== Varlink pairs, all daemons at once === (load average %s)", loadAvg())
		loads = append(loads, "Varlink pair phase "+loadAvg())
		b.pairPhase(scratch)
	}
	if cfg.dbusListSize > 0 && !interrupted.Load() {
		time.Sleep(settle)
		logf("=== D-Bus, all daemons at once === (load average %s)", loadAvg())
		loads = append(loads, "D-Bus phase "+loadAvg())
		if err := b.dbusPhase(scratch); err != nil {
			logf("D-Bus phase: %v", err)
		}
	}
	if images != nil && !interrupted.Load() {
		time.Sleep(settle)
		logf("=== D-Bus images, all daemons at once === (load average %s)", loadAvg())
		loads = append(loads, "image phase "+loadAvg())
		b.imagePhase(scratch)
	}
	if cfg.copy && !interrupted.Load() {
		time.Sleep(settle)
		logf("=== copies, all daemons at once === (load average %s)", loadAvg())
		loads = append(loads, "copy phase "+loadAvg())
		before := pageReportedKiB()
		b.copyPhase(scratch)
		if after := pageReportedKiB(); before >= 0 && after >= before {
			logf("free page reporting during the copy phase: %d MiB", (after-before)>>10)
			loads = append(loads, fmt.Sprintf("copy phase's freed memory handed back to the VM's host (free page reporting): %s MiB", count(int((after-before)>>10))))
		}
	}
	if cfg.shellRounds > 0 && !interrupted.Load() {
		time.Sleep(settle)
		logf("=== shells, all daemons at once === (load average %s)", loadAvg())
		loads = append(loads, "shell phase "+loadAvg())
		b.shellPhase(scratch)
	}
	loads = append(loads, "end "+loadAvg())
	f.close()

	rep.Date = started.UTC().Format("2006-01-02 15:04 UTC") + fmt.Sprintf(" (%s)", time.Since(started).Round(time.Second))
	rep.Machine = machineInfo()
	rep.Versions = append(versions,
		"bus: "+firstLine("dbus-daemon", "--version")+" (host binary, one bus per daemon, same minimal config)",
		"harness: "+runtime.Version()+", gcc "+firstLine("gcc", "-dumpfullversion"))
	rep.Config = configLine(cfg, loads)
	rep.Notes = methodNotes(cfg)
	if cfg.svg != "" {
		if err := os.WriteFile(cfg.svg, userdbChart(rep, cfg.userdbSizes).svg(), 0o644); err != nil {
			return err
		}
		logf("wrote %s", cfg.svg)
		if cfg.doc != "" {
			if rel, err := filepath.Rel(filepath.Dir(cfg.doc), cfg.svg); err == nil {
				rep.SVGPath = rel
			}
		}
	}
	md := rep.markdown()
	fmt.Println(md)
	if cfg.doc != "" {
		old, err := os.ReadFile(cfg.doc)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := os.WriteFile(cfg.doc, []byte(replaceSection(string(old), md)), 0o644); err != nil {
			return err
		}
		logf("wrote %s", cfg.doc)
	}
	return nil
}

// settle is the pause before each daemon's turn.
const settle = 3 * time.Second

func firstLineOf(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func versionLine(d *daemon) string {
	switch d.key {
	case "ours":
		rev := firstLine("git", "rev-parse", "--short", "HEAD")
		if rev != "" {
			if out, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); len(out) > 0 {
				rev += "+changes"
			}
			return "ours: " + d.version + " at commit " + rev
		}
		return "ours: " + d.version
	default:
		return "upstream " + d.key + ": " + d.label
	}
}

// takeLock holds an exclusive flock on path for the rest of the process.
func takeLock(path string, wait time.Duration) error {
	fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CREAT|syscall.O_CLOEXEC, 0o666)
	if err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	deadline := time.Now().Add(wait)
	said := false
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil // held until exit: the fd stays open
		}
		if err != syscall.EWOULDBLOCK {
			return fmt.Errorf("lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is held by someone else (waited %s)", path, wait)
		}
		if !said {
			logf("waiting for %s (another test uses the stock paths)", path)
			said = true
		}
		time.Sleep(time.Second)
	}
}

// checkStockPaths refuses to run when somebody else serves the stock userdb
// socket, which machined 252 binds and glibc's nss-systemd asks.
func checkStockPaths() error {
	if socketAlive(stockUserdbSock) {
		return fmt.Errorf("%s answers: a machined (or a test) is using the stock paths; stop it first", stockUserdbSock)
	}
	if st, err := os.Lstat(stockUserdbSock); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("%s exists and is not a socket; not touching it", stockUserdbSock)
		}
		logf("removing stale %s (nobody listens on it)", stockUserdbSock)
		os.Remove(stockUserdbSock)
	}
	return nil
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func machineInfo() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(rest)
				if len(f) > 0 {
					kib, _ := strconv.Atoi(f[0])
					mem = fmt.Sprintf(", %.0f GiB RAM", float64(kib)/(1<<20))
				}
			}
		}
	}
	var u syscall.Utsname
	syscall.Uname(&u)
	osr := ""
	if b, err := os.ReadFile("/etc/debian_version"); err == nil {
		osr = ", Debian " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d cores%s, Linux %s%s", model, runtime.NumCPU(), mem, utsString(u.Release[:]), osr)
}

func utsString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func configLine(c config, loads []string) string {
	mode := "full"
	if c.quick {
		mode = "quick (-quick)"
	}
	return fmt.Sprintf("Mode: %s. Each figure is the median of %d repetitions of %s (latencies: the median of every call in them). "+
		"%s. D-Bus rows: %s. "+
		"Load average (1, 5, 15 min) at the start, when each daemon's turn began, at each phase and at the end: %s. "+
		"The 2 vCPUs are shared with whatever else runs on the machine, so expect noise.",
		mode, c.reps, c.dur, pairMethod(c, varlinkDaemons(c)), duelMethod(c, len(c.daemons)), strings.Join(loads, "; "))
}

func methodNotes(c config) []string {
	notes := []string{
		"How to read it: ↑ higher is better, ↓ lower is better; `ours/252` and `ours/257` divide our figure by upstream's. " +
			"n/a means the daemon cannot run the workload here (reason in the notes), never that it was skipped.",
		"",
		"Method. Every machine has its own leader process (forked by `csrc/leaderfarm.c`), each in its own cgroup " +
			"`machine.slice/bench-*.scope` of the cgroup2 hierarchy, because upstream refuses a leader without a unit. " +
			fmt.Sprintf("The leaders of the machines counted in the table run in user namespaces: machine i maps 0…65535 to host ids "+
				"65536·(10+i) onwards, so %s machines end at host id %s, far below 2³²−1 (the scheme fits %s machines). ",
				count(c.maxLevel()), count(int(uidBase(c.maxLevel()-1))+uidRange-1), count(maxUserNSLeaders)) +
			"The same leaders serve all daemons, which run one after the other, each with its state directory on a tmpfs: " +
			"upstream 252 in a mount namespace of its own with a tmpfs bound over `/run/systemd/machines` (its userdb socket is " +
			"the stock `/run/systemd/userdb/io.systemd.Machine`, used under the `/tmp/stock-paths.lock` lock), upstream 257 " +
			"chrooted into the Debian 13 tree in a mount namespace of its own with a tmpfs `/run`, ours with `--runtime-dir` on a tmpfs " +
			"and default flags. " +
			"Each has its own bus (252 finds it through `DBUS_SYSTEM_BUS_ADDRESS`). " +
			"The D-Bus rows come from a last phase with all daemons running at once, their repetitions interleaved: run one " +
			"after the other, a drift in the VM's speed over minutes lands on one daemon and can turn a verdict around; " +
			"interleaved, it lands on all alike. The dbus-daemon rows are the bus's own CPU for the same operations, which " +
			"grows with the messages a daemon exchanges with the bus (replies, signals, its own queries to the bus). " +
			"The D-Bus image rows likewise come from a phase of their own with all daemons up, interleaved in rotating order; " +
			"beside every image listing row, the daemon's CPU per operation (and, over D-Bus, its dbus-daemon's) is its threads' " +
			"CPU time over the same repetitions, from schedstat, divided by the operations done in them: unlike the wall clock, " +
			"it leaves out the harness's own decoding of the replies. The rows marked (lean client) make the same calls on a " +
			"plain connection to the bus that sends prebuilt messages and reads only each reply's header, skipping its body by " +
			"length; godbus checks once per repetition, untimed, that every image is still listed.",
		"",
		"Clients: a lean Varlink client (a socket read and written with blocking system calls, outside Go's network poller, as C clients wait; replies not decoded beyond what is checked) and godbus, in the harness " +
			"process; the lean client's Register+Unregister pairs take " + count(c.pairLeaders) + " leaders in turn (split between " +
			"the daemons of a phase that runs them at once), so that a leader comes back only after that many pairs (upstream " +
			"refuses to reuse a leader until a deferred clean-up has run); varlink/go's pairs cycle through " +
			strconv.Itoa(goCycleLeaders) + " leaders, as a program re-registering a few VMs would. " +
			"userdb lookups ask for uid 1000 (`vu-benchN-1000`) of machines picked at random; NSS lookups run " +
			"`csrc/nsslookup.c`, a getpwuid()/getpwnam() loop through glibc and nss-systemd, which asks " +
			"`/run/systemd/userdb/io.systemd.Machine` (a symlink to the daemon's socket for 257 and ours), so one daemon at a time. " +
			"Start-up: the daemon is stopped with SIGTERM and started again on the state files it wrote; the time runs from exec " +
			"until one List (252: ListMachines) returns every machine. Leader exit: SIGKILL to a registered machine's leader, " +
			"then List/GetMachine by name until it is gone.",
	}
	if c.copy {
		notes = append(notes, "",
			"Copies: every daemon up at once, each on its own bus with a machine of its own (a leader of the farm); a round "+
				"copies the 1 GiB tree into the machine and back out over D-Bus (CopyToMachine, CopyFromMachine) after removing "+
				"the previous round's copies and a sync, every daemon once per round in an order rotated from round to round, "+
				"so that each pays alike for the others' deletes and writeback (run one after the other, whichever came second "+
				"was the slower), at least nine rounds: on a VM whose kernel hands freed memory back to its host, the copy right after "+
				"a delete faults its page cache in again and is much slower whoever makes it. Each round then times five "+
				"CopyToMachine calls of one 4 KiB file: what a copy costs before any content moves (upstream forks a child, "+
				"ours starts a helper process). The copies are made on a tmpfs of their own. 257 runs chrooted in its own tree "+
				"and cannot open the harness's host directory.")
	}
	if c.shellRounds > 0 {
		notes = append(notes, "",
			fmt.Sprintf("Shells: every daemon up at once, each on its own bus with its own containers, which systemd-nspawn 252 registers with it "+
				"over that bus (`--register=yes --keep-unit`, in a `machine.slice/bench-shell-*.scope` of the harness): an overlay of the cached "+
				"Debian 12 tree of `tests/setup/debian-tree.sh` booted with `-b` (timed once its systemd reports the system up), and a static "+
				"busybox tree running `sleep` as PID 1. The host's machinectl 252 runs `shell NAME /bin/true` against each daemon in turn, %d "+
				"rounds after one not counted, in an order rotated from round to round; the time runs from its start to its exit, so it holds "+
				"the client's own start-up (in a mount namespace where a tmpfs `/run/systemd` makes the host look booted with systemd, the same "+
				"for all), the daemon's work, the container's systemd starting the shell's service, and `/bin/true`'s run until the terminal "+
				"hangs up.", c.shellRounds))
	}
	return notes
}
