package main

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// machinePrefix starts every machine name the benchmark registers, so that its
// state files can be told apart.
const machinePrefix = "bench"

func machineName(i int) string { return machinePrefix + strconv.Itoa(i) }

// sampleUser is the user looked up in machine i: uid 1000 inside its namespace.
func sampleUser(i int) (uid uint32, name string) {
	return uidBase(i) + 1000, "vu-" + machineName(i) + "-1000"
}

// Row groups, names and units of the table.
const (
	gVarlink = "Varlink io.systemd.Machine"
	gUserdb  = "userdb GetUserRecord, leaders in user namespaces"
	gDBus    = "D-Bus org.freedesktop.machine1"
	gMemory  = "Memory (VmRSS of the daemon process)"
	gLife    = "Lifecycle"
)

func rowPairs(conns int) string {
	if conns == 1 {
		return "Register+Unregister pairs, 1 connection"
	}
	return fmt.Sprintf("Register+Unregister pairs, %d connections", conns)
}
func rowList(n int) string       { return fmt.Sprintf("List (more), %s machines", count(n)) }
func rowRSS(n int) string        { return fmt.Sprintf("with %s machines", count(n)) }
func rowDBusList(n int) string   { return fmt.Sprintf("ListMachines, %s machines", count(n)) }
func rowCPUPair(bus bool) string { return cpuWho(bus) + " CPU per pair" }
func rowCPUList(bus bool, n int) string {
	return fmt.Sprintf("%s CPU per ListMachines, %s machines", cpuWho(bus), count(n))
}
func cpuWho(bus bool) string {
	if bus {
		return "dbus-daemon"
	}
	return "daemon"
}
func rowStartup(n int) string {
	return fmt.Sprintf("start-up with %s persisted machines, until all are listed", count(n))
}
func count(n int) string { return groupThousands(strconv.Itoa(n)) }
func rowPerMachine(lo, hi int) string {
	return fmt.Sprintf("per machine (RSS at %s − RSS at %s) / %s", count(hi), count(lo), count(hi-lo))
}

const (
	rowDBusPairs = "RegisterMachine+UnregisterMachine pairs, 1 connection"
	rowIdle      = "idle (.host only), fresh start"
	rowExit      = "leader exit → machine removed"
)

// userdb variants, in table order.
var userdbVariants = []struct {
	name, mode string
	cpu        bool // also report the daemon's CPU per lookup
}{
	{"by uid, persistent connection", "uid-persistent", false},
	{"by name, persistent connection", "name-persistent", false},
	{"by uid, new connection per call", "uid-new", true},
	{"by name, new connection per call", "name-new", true},
	{"getpwuid() through glibc NSS (nss-systemd)", "uid-nss", true},
	{"getpwnam() through glibc NSS (nss-systemd)", "name-nss", true},
}

// rowCPU is the daemon's CPU per operation of the workload of row name: the
// CPU time of its threads over the workload's repetitions, divided by the
// operations done, which the rest of the VM's load hardly moves.
func rowCPU(name string) string { return "daemon CPU per operation: " + name }

// rowClientCPU is the harness's own CPU per operation: where the client's
// decoding is most of a call, no daemon can be much faster than that.
func rowClientCPU(name string) string { return "client CPU per operation: " + name }

// selfCPUNS is the CPU time of the harness process so far.
func selfCPUNS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// cpuPerOp sets the CPU row of a workload from the daemon's CPU time before
// (cpu0) and the operations done since.
func (b *bench) cpuPerOp(group, name string, d *daemon, cpu0 int64, ops int) {
	if ops <= 0 || cpu0 <= 0 {
		return
	}
	b.set(group, rowCPU(name), "µs", false, d, figure(float64(cpuNS(d.pid())-cpu0)/1e3/float64(ops), nil))
}

func rowUserdb(variant string, n int) string {
	return fmt.Sprintf("%s, %s machines", variant, count(n))
}

// bench is one run.
type bench struct {
	cfg          config
	rep          *report
	farm         *farm
	nssBin       string
	pairPool     []*leader    // leaders of the pair workloads, taken in turn
	pairNext     atomic.Int64 // next one, kept across workloads
	userLeaders  []*leader    // leader of machine bench<i>
	goLeaders    []*leader    // the few the varlink/go pair workload cycles through
	echo         *echoServer  // the floor of the userdb rows
	logf         func(format string, args ...any)
	stockLinked  bool
	exitSeq      int
	scratch      string // the run's scratch directory, on disk
	copySrc      string // the copy workload's tree, made once
	copyBytes    int64
	shellTree    string // the cached Debian tree, once found
	shellTreeErr error
}

// levels are the machine counts the run goes through, ascending.
func (c config) levels() []int {
	var l []int
	l = append(l, c.listSizes...)
	l = append(l, c.userdbSizes...)
	if c.dbusListSize > 0 {
		l = append(l, c.dbusListSize)
	}
	slices.Sort(l)
	return slices.Compact(l)
}

// maxLevel is the most machines any workload needs registered at once: the
// pair phase's levels count too.
func (c config) maxLevel() int {
	l := append(c.levels(), c.pairSizes...)
	if len(l) == 0 {
		return 0
	}
	return slices.Max(l)
}

// plan creates every row in table order, so that no workload is dropped: a cell
// that stays empty is reported as not run.
func (b *bench) plan() {
	r, c := b.rep, b.cfg
	for _, w := range c.pairWorkloads() {
		r.add(gVarlink, w.row, "pairs/s", true)
		r.add(gVarlink, rowCPU(w.row), "µs", false)
		r.add(gVarlink, rowClientCPU(w.row), "µs", false)
		if w.echo() {
			r.add(gVarlink, rowFloorShare(w.row), "%", true)
		}
	}
	if len(c.pairSizes) > 0 {
		for _, pl := range placements {
			r.add(gVarlink, rowPairFloor(pl), "pairs/s", true)
		}
	}
	for _, n := range c.listSizes {
		r.add(gVarlink, rowList(n), "ms", false)
	}
	for _, n := range c.listSizes {
		r.add(gVarlink, rowGoList(n), "ms", false)
		r.add(gVarlink, rowCPU(rowGoList(n)), "µs", false)
		r.add(gVarlink, rowClientCPU(rowGoList(n)), "µs", false)
	}
	for _, v := range userdbVariants {
		for _, n := range c.userdbSizes {
			r.add(gUserdb, rowUserdb(v.name, n), "lookups/s", true)
		}
		if v.cpu {
			for _, n := range c.userdbSizes {
				r.add(gUserdb, rowCPU(rowUserdb(v.name, n)), "µs", false)
			}
		}
	}
	if len(c.userdbSizes) > 0 {
		r.add(gUserdb, rowEcho, "lookups/s", true)
		r.add(gUserdb, rowEchoShare, "%", true)
		for _, pl := range pinnedPlacements {
			r.add(gUserdb, rowEchoSharePinned(pl), "%", true)
		}
	}
	if c.dbusListSize > 0 {
		r.add(gDBus, rowDBusList(c.dbusListSize), "ms", false)
		r.add(gDBus, rowDBusPairs, "pairs/s", true)
		r.add(gDBus, rowCPUPair(false), "µs", false)
		r.add(gDBus, rowCPUPair(true), "µs", false)
		r.add(gDBus, rowCPUList(false, c.dbusListSize), "µs", false)
		r.add(gDBus, rowCPUList(true, c.dbusListSize), "µs", false)
	}
	r.add(gMemory, rowIdle, "MiB", false)
	if c.churnRounds > 0 {
		r.add(gMemory, rowChurnRSS(c.churnRounds, c.churnMachs), "MiB", false)
		r.add(gMemory, rowChurnGrowth(c.churnRounds), "MiB", false)
	}
	for _, n := range c.levels() {
		r.add(gMemory, rowRSS(n), "MiB", false)
	}
	if l := c.levels(); len(l) > 1 {
		r.add(gMemory, rowPerMachine(l[0], l[len(l)-1]), "KiB", false)
	}
	if c.startup && c.maxLevel() > 0 {
		r.add(gLife, rowStartup(c.maxLevel()), "ms", false)
	}
	r.add(gLife, rowExit, "ms", false)
	if c.copy {
		r.add(gCopy, rowCopyTo, "MiB/s", true)
		r.add(gCopy, rowCopyFrom, "MiB/s", true)
	}
	b.planShell()
	b.planImages()
}

// fillNotRun marks every empty cell of a daemon with why it was not measured.
func (b *bench) fillNotRun(key, why string) {
	for _, x := range b.rep.Rows {
		if _, ok := x.Cells[key]; !ok {
			x.Cells[key] = cell{Text: "not run", Note: why}
		}
	}
}

func (b *bench) set(group, name, unit string, higher bool, d *daemon, c cell) {
	b.rep.set(group, name, unit, higher, d.key, c)
	note := ""
	if c.Note != "" {
		note = " — " + c.Note
	}
	switch {
	case c.Has && len(c.Samples) > 1:
		b.logf("  %-7s %s: %s %s (samples %s)%s", d.key, name, formatNum(c.Value), unit, formatSamples(c.Samples), note)
	case c.Has:
		b.logf("  %-7s %s: %s %s%s", d.key, name, formatNum(c.Value), unit, note)
	default:
		b.logf("  %-7s %s: %s%s", d.key, name, c.Text, note)
	}
}

func formatSamples(s []float64) string {
	var buf bytes.Buffer
	for i, v := range s {
		if i > 0 {
			buf.WriteString(" ")
		}
		buf.WriteString(formatNum(v))
	}
	return buf.String()
}

// run goes through every workload for one daemon, which is running.
func (b *bench) run(d *daemon) error {
	// Churn first: it leaves no machine behind, but it grows the daemons' heaps
	// and tables, so the memory figures come from a fresh start afterwards.
	b.exitLatency(d)
	if err := d.restart(); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond)
	b.rss(d, rowIdle)
	if b.cfg.churnRounds > 0 {
		base, err := rssKiB(d.pid())
		if err != nil {
			return err
		}
		b.churn(d, base)
		// The memory rows below start from a fresh daemon again.
		if err := d.restart(); err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond)
	}

	registered := 0
	rssAt := map[int]int{}
	for _, n := range b.cfg.levels() {
		b.logf("%s: registering machines %d…%d", d.key, registered, n-1)
		t := time.Now()
		names := make([]string, 0, n-registered)
		for i := registered; i < n; i++ {
			names = append(names, machineName(i))
		}
		if err := d.registerAll(names, b.userLeaders[registered:n]); err != nil {
			return fmt.Errorf("registering %d machines: %w", n, err)
		}
		b.logf("%s: %d machines registered in %s", d.key, n-registered, time.Since(t).Round(time.Millisecond))
		registered = n
		time.Sleep(memSettle)
		b.rss(d, rowRSS(n))
		rssAt[n], _ = rssKiB(d.pid())
		if slices.Contains(b.cfg.listSizes, n) {
			b.varlinkList(d, n)
			b.goList(d, n)
		}
		if slices.Contains(b.cfg.userdbSizes, n) {
			b.userdb(d, n)
		}
	}
	if l := b.cfg.levels(); len(l) > 1 {
		lo, hi := l[0], l[len(l)-1]
		if rssAt[lo] > 0 && rssAt[hi] > 0 {
			b.set(gMemory, rowPerMachine(lo, hi), "KiB", false, d, figure(float64(rssAt[hi]-rssAt[lo])/float64(hi-lo), nil))
		}
	}
	if b.cfg.startup && registered > 0 {
		if err := b.startupTime(d, registered); err != nil {
			return err
		}
	}
	b.runImages(d)
	return nil
}

// memSettle is the pause between the last registration (or unregistration)
// of a burst and reading RSS, the same for every daemon: what a host sees once
// a burst is over, after a daemon's deferred clean-up or return of freed pages
// has run, not what it holds in the middle of one.
const memSettle = time.Second

func (b *bench) rss(d *daemon, name string) {
	kib, err := rssKiB(d.pid())
	if err != nil {
		b.set(gMemory, name, "MiB", false, d, failed(err))
		return
	}
	b.set(gMemory, name, "MiB", false, d, figure(float64(kib)/1024, nil))
}

func (b *bench) varlinkList(d *daemon, n int) {
	name := rowList(n)
	if d.machineSock == "" {
		b.set(gVarlink, name, "ms", false, d, na(d.noVarlink))
		return
	}
	v, err := vdial(d.machineSock)
	if err != nil {
		b.set(gVarlink, name, "ms", false, d, failed(err))
		return
	}
	defer v.Close()
	med, s, err := latencies(b.cfg.reps, b.cfg.dur, 3, 2000, func() error {
		got, err := v.callMore(listAllReq)
		if err != nil {
			return err
		}
		if got != n+1 {
			return fmt.Errorf("List returned %d machines, want %d", got, n+1)
		}
		return nil
	})
	if err != nil {
		b.set(gVarlink, name, "ms", false, d, failed(err))
		return
	}
	b.set(gVarlink, name, "ms", false, d, figure(med, s))
}

// userdb measures lookups of users of machines picked at random among n.
func (b *bench) userdb(d *daemon, n int) {
	rng := rand.New(rand.NewPCG(uint64(n), 0x6265_6e63))
	idx := rng.Perm(n)
	if len(idx) > b.cfg.keys {
		idx = idx[:b.cfg.keys]
	}
	var uidReqs, nameReqs [][]byte
	var wantName, wantUID [][]byte
	var uidKeys, nameKeys []string
	for _, i := range idx {
		uid, name := sampleUser(i)
		uidReqs = append(uidReqs, userByUIDReq(uid))
		nameReqs = append(nameReqs, userByNameReq(name))
		wantName = append(wantName, []byte(`"userName":"`+name+`"`))
		wantUID = append(wantUID, []byte(`"uid":`+strconv.FormatUint(uint64(uid), 10)+`,`))
		uidKeys = append(uidKeys, strconv.FormatUint(uint64(uid), 10))
		nameKeys = append(nameKeys, name)
	}
	// check verifies a reply names the user that was asked for.
	check := func(reply []byte, want []byte) error {
		if !bytes.Contains(reply, want) {
			return fmt.Errorf("unexpected reply %.200s (want %s)", reply, want)
		}
		return nil
	}
	for _, variant := range userdbVariants {
		name := rowUserdb(variant.name, n)
		var v float64
		var s []float64
		var err error
		k := 0
		cpu0 := cpuNS(d.pid())
		switch variant.mode {
		case "uid-persistent", "name-persistent":
			var c *vconn
			if c, err = vdial(d.userdbSock); err != nil {
				break
			}
			reqs, want := uidReqs, wantName
			if variant.mode == "name-persistent" {
				reqs, want = nameReqs, wantUID
			}
			lookup := func() error {
				i := k % len(reqs)
				k++
				reply, err := c.call(reqs[i])
				if err != nil {
					return err
				}
				return check(reply, want[i])
			}
			if variant.mode == "uid-persistent" && n == b.cfg.userdbSizes[0] {
				v, s, err = b.againstEcho(d, reqs, lookup)
				if err == nil {
					b.pinnedShares(d, reqs, lookup)
				}
			} else {
				v, s, err = medianRate(b.cfg.reps, b.cfg.dur, 3, lookup)
			}
			c.Close()
		case "uid-new", "name-new":
			reqs, want := uidReqs, wantName
			if variant.mode == "name-new" {
				reqs, want = nameReqs, wantUID
			}
			v, s, err = medianRate(b.cfg.reps, b.cfg.dur, 3, func() error {
				i := k % len(reqs)
				k++
				reply, err := callOnce(d.userdbSock, reqs[i])
				if err != nil {
					return err
				}
				return check(reply, want[i])
			})
		case "uid-nss", "name-nss":
			if !b.cfg.nss {
				b.set(gUserdb, name, "lookups/s", true, d, na("NSS workloads disabled (-nss=false)"))
				continue
			}
			mode, keys := "uid", uidKeys
			if variant.mode == "name-nss" {
				mode, keys = "name", nameKeys
			}
			err = b.withStockUserdb(d, func() error {
				for range b.cfg.reps {
					r, calls, err := nssRate(b.nssBin, mode, b.cfg.dur, keys)
					if err != nil {
						return err
					}
					s = append(s, r)
					k += calls
				}
				v = median(s)
				return nil
			})
		}
		if err != nil {
			b.set(gUserdb, name, "lookups/s", true, d, failed(err))
			continue
		}
		b.set(gUserdb, name, "lookups/s", true, d, figure(v, s))
		if variant.cpu {
			b.cpuPerOp(gUserdb, name, d, cpu0, k)
		}
	}
}

// withStockUserdb makes the daemon's userdb socket the one glibc's nss-systemd
// asks, /run/systemd/userdb/io.systemd.Machine, for the duration of f: a symlink
// (nss-systemd connects through it) unless the daemon binds that path itself.
func (b *bench) withStockUserdb(d *daemon, f func() error) error {
	if d.userdbSock == stockUserdbSock {
		return f()
	}
	if _, err := os.Lstat(stockUserdbSock); err == nil {
		return fmt.Errorf("%s exists: cannot point NSS at %s", stockUserdbSock, d.key)
	}
	made := false
	if _, err := os.Stat(stockUserdbDir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(stockUserdbDir, 0o755); err != nil {
			return err
		}
		made = true
	}
	if err := os.Symlink(d.userdbSock, stockUserdbSock); err != nil {
		return err
	}
	b.stockLinked = true
	defer func() {
		os.Remove(stockUserdbSock)
		b.stockLinked = false
		if made {
			os.Remove(stockUserdbDir)
		}
	}()
	return f()
}

// startupTime restarts the daemon on its state (n machines with live leaders,
// persisted by the daemon itself) and times from exec until it lists them all.
func (b *bench) startupTime(d *daemon, n int) error {
	name := rowStartup(n)
	var s []float64
	for rep := range b.cfg.reps {
		b.logf("%s: restart %d with %d persisted machines", d.key, rep+1, n)
		d.stop()
		t0 := time.Now()
		if err := d.start(); err != nil {
			return fmt.Errorf("restart: %w", err)
		}
		var got int
		for {
			var v *vconn
			var err error
			if d.machineSock != "" {
				if v, err = vdial(d.machineSock); err == nil {
					got, err = v.callMore(listAllReq)
					v.Close()
				}
			} else {
				got, err = dbusListCount(d.busConn)
			}
			if err == nil && got == n+1 {
				break
			}
			if time.Since(t0) > 5*time.Minute {
				b.set(gLife, name, "ms", false, d, failed(fmt.Errorf("after 5 min: %d listed, want %d (last error %v)", got, n+1, err)))
				return nil
			}
			time.Sleep(time.Millisecond)
		}
		el := time.Since(t0)
		s = append(s, float64(el.Nanoseconds())/1e6)
		if el > 20*time.Second {
			break
		}
	}
	b.set(gLife, name, "ms", false, d, figure(median(s), s))
	return nil
}

// exitLatency kills a registered machine's leader and times until the daemon
// no longer lists the machine, giving up after cfg.exitWait.
func (b *bench) exitLatency(d *daemon) {
	v, c, closeCtl, err := d.control()
	if err != nil {
		b.set(gLife, rowExit, "ms", false, d, failed(err))
		return
	}
	defer closeCtl()
	var s, reapedMs []float64
	for range b.cfg.reps {
		b.exitSeq++
		l, err := b.farm.spawn("exit"+strconv.Itoa(b.exitSeq), 0)
		if err != nil {
			b.set(gLife, rowExit, "ms", false, d, failed(err))
			return
		}
		name := machinePrefix + "exit" + strconv.Itoa(b.exitSeq)
		if err := d.registerOn(v, c, name, l.pid); err != nil {
			b.farm.kill(l)
			b.set(gLife, rowExit, "ms", false, d, failed(err))
			return
		}
		t0 := time.Now()
		killed := make(chan error, 1)
		var reaped time.Duration
		go func() {
			err := b.farm.kill(l)
			reaped = time.Since(t0)
			killed <- err
		}()
		gone := false
		for time.Since(t0) < b.cfg.exitWait {
			ok, err := d.gone(v, c, name)
			if err != nil {
				<-killed
				b.set(gLife, rowExit, "ms", false, d, failed(err))
				return
			}
			if ok {
				gone = true
				break
			}
			time.Sleep(200 * time.Microsecond)
		}
		el := time.Since(t0)
		<-killed
		if !gone {
			d.unregister(v, c, name)
			b.set(gLife, rowExit, "ms", false, d, cell{Text: d.exitNote,
				Note: fmt.Sprintf("the machine was still registered %s after its leader was killed and reaped: "+
					"without systemd as PID 1, upstream machined learns of a leader's death only from systemd's unit signals",
					b.cfg.exitWait)})
			return
		}
		b.logf("  %-7s leader %d killed and reaped by its parent after %s, machine gone after %s", d.key, l.pid,
			reaped.Round(time.Microsecond), el.Round(time.Microsecond))
		s = append(s, float64(el.Nanoseconds())/1e6)
		reapedMs = append(reapedMs, float64(reaped.Nanoseconds())/1e6)
	}
	res := figure(median(s), s)
	res.Note = fmt.Sprintf("for scale: the leader's parent had killed and reaped it %s ms after the harness asked for the SIGKILL "+
		"(median); the daemon cannot notice the exit before the kernel has carried it out", formatNum(median(reapedMs)))
	b.set(gLife, rowExit, "ms", false, d, res)
}

// againstEcho measures lookup and the same requests against the bare echo
// server in alternating repetitions, sets the echo rows, and returns the
// lookup's median and samples.
func (b *bench) againstEcho(d *daemon, reqs [][]byte, lookup func() error) (float64, []float64, error) {
	e, err := vdial(b.echo.sock)
	if err != nil {
		b.set(gUserdb, rowEcho, "lookups/s", true, d, failed(err))
		b.set(gUserdb, rowEchoShare, "%", true, d, failed(err))
		return medianRate(b.cfg.reps, b.cfg.dur, 3, lookup)
	}
	defer e.Close()
	echoOnce := echoCaller(e, reqs)
	var ours, floor, share []float64
	for range b.cfg.reps {
		r, err := rate(b.cfg.dur, 3, lookup)
		if err != nil {
			return 0, ours, err
		}
		f, err := rate(b.cfg.dur, 3, echoOnce)
		if err != nil {
			b.set(gUserdb, rowEcho, "lookups/s", true, d, failed(err))
			b.set(gUserdb, rowEchoShare, "%", true, d, failed(err))
			return 0, ours, err
		}
		ours, floor, share = append(ours, r), append(floor, f), append(share, 100*r/f)
	}
	b.set(gUserdb, rowEcho, "lookups/s", true, d, figure(median(floor), floor))
	b.set(gUserdb, rowEchoShare, "%", true, d, figure(median(share), share))
	return median(ours), ours, nil
}
