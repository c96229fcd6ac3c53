package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// duel measures the two D-Bus workloads with every daemon running at once,
// interleaved: each repetition runs every daemon's Register+Unregister pairs,
// then every daemon's ListMachines, in an order rotated from one repetition to
// the next. Run one daemon after the other, as the full run does, a drift in
// this VM's speed (±30% over minutes) lands on one daemon and can turn a
// verdict around; interleaved, it lands on all of them alike.
func (b *bench) duel(ds []*daemon) error {
	n := b.cfg.dbusListSize
	if n <= 0 || n > len(b.userLeaders) {
		return fmt.Errorf("-duel needs -dbus-list-size between 1 and %d", len(b.userLeaders))
	}
	names := make([]string, n)
	for i := range names {
		names[i] = machineName(i)
	}
	for _, d := range ds {
		if d.busConn == nil {
			return fmt.Errorf("%s has no bus connection", d.key)
		}
		t := time.Now()
		if err := d.registerAll(names, b.userLeaders[:n]); err != nil {
			return fmt.Errorf("%s: registering %d machines: %w", d.key, n, err)
		}
		b.logf("%s: %d machines registered in %s", d.key, n, time.Since(t).Round(time.Millisecond))
	}
	// Each daemon takes its own share of the pair leaders in turn, so a
	// leader comes back to a daemon only after that many of its own pairs.
	share := len(b.pairPool) / len(ds)
	if share < 1 {
		return errors.New("fewer pair leaders than daemons")
	}
	next := make([]int, len(ds))
	pair := func(i int) func() error {
		d := ds[i]
		pool := b.pairPool[i*share : (i+1)*share]
		return func() error {
			l := pool[next[i]%len(pool)]
			next[i]++
			name := machinePrefix + l.tag
			if err := dbusRegister(d.busConn, name, l.pid); err != nil {
				return fmt.Errorf("RegisterMachine: %w", err)
			}
			if err := dbusUnregister(d.busConn, name); err != nil {
				return fmt.Errorf("UnregisterMachine: %w", err)
			}
			return nil
		}
	}
	list := func(i int) func() error {
		return func() error {
			got, err := dbusListCount(ds[i].busConn)
			if err != nil {
				return err
			}
			if got != n+1 {
				return fmt.Errorf("ListMachines returned %d machines, want %d", got, n+1)
			}
			return nil
		}
	}
	// CPU time the daemon (and its bus) spent during its own windows, and
	// the operations it did then: CPU per operation does not depend on what
	// else the VM was doing, only on the daemon.
	cpuPairs, cpuList := make([]cpuTally, len(ds)), make([]cpuTally, len(ds))
	rates := make([][]float64, len(ds))       // pairs/s, one per repetition
	calls := make([][]float64, len(ds))       // every ListMachines, ms
	listMedians := make([][]float64, len(ds)) // the median of each repetition
	failed := make([]error, len(ds))
	for rep := 0; rep < b.cfg.duelReps; rep++ {
		for k := range ds {
			i := (k + rep) % len(ds)
			if failed[i] != nil {
				continue
			}
			start := next[i]
			cpu := cpuPairs[i].begin(ds[i])
			r, err := rate(b.cfg.dur, 3, pair(i))
			if err != nil {
				failed[i] = err
				continue
			}
			cpuPairs[i].end(ds[i], cpu, next[i]-start)
			rates[i] = append(rates[i], r)
			time.Sleep(50 * time.Millisecond)
		}
		for k := range ds {
			i := (k + rep) % len(ds)
			if failed[i] != nil {
				continue
			}
			cpu := cpuList[i].begin(ds[i])
			med, all, err := latencyRun(b.cfg.dur, 3, 2000, list(i))
			if err != nil {
				failed[i] = err
				continue
			}
			cpuList[i].end(ds[i], cpu, len(all))
			calls[i] = append(calls[i], all...)
			listMedians[i] = append(listMedians[i], med)
			time.Sleep(50 * time.Millisecond)
		}
	}
	for i, d := range ds {
		if failed[i] != nil {
			b.set(gDBus, rowDBusPairs, "pairs/s", true, d, cell{Text: "failed", Note: failed[i].Error()})
			continue
		}
		b.set(gDBus, rowDBusPairs, "pairs/s", true, d, figure(median(rates[i]), rates[i]))
		b.set(gDBus, rowDBusList(n), "ms", false, d, figure(median(calls[i]), listMedians[i]))
		b.set(gDBus, rowCPUPair(false), "µs", false, d, cpuPairs[i].perOp(false))
		b.set(gDBus, rowCPUPair(true), "µs", false, d, cpuPairs[i].perOp(true))
		b.set(gDBus, rowCPUList(false, n), "µs", false, d, cpuList[i].perOp(false))
		b.set(gDBus, rowCPUList(true, n), "µs", false, d, cpuList[i].perOp(true))
	}
	return nil
}

// cpuTally sums CPU time over measurement windows.
type cpuTally struct {
	daemonNS, busNS int64
	ops             int
}

type cpuMark struct{ daemon, bus int64 }

func (c *cpuTally) begin(d *daemon) cpuMark {
	return cpuMark{cpuNS(d.pid()), cpuNS(d.busPID())}
}

func (c *cpuTally) end(d *daemon, m cpuMark, ops int) {
	c.daemonNS += cpuNS(d.pid()) - m.daemon
	c.busNS += cpuNS(d.busPID()) - m.bus
	c.ops += ops
}

func (c *cpuTally) perOp(bus bool) cell {
	if c.ops == 0 {
		return cell{Text: "–"}
	}
	ns := c.daemonNS
	if bus {
		ns = c.busNS
	}
	return figure(float64(ns)/float64(c.ops)/1e3, nil)
}

// cpuNS is the CPU time of all threads of pid so far, from their schedstat.
func cpuNS(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum int64
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if v, err := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64); err == nil {
			sum += v
		}
	}
	return sum
}

// startAll starts every daemon of the run at once, each on its own bus. A
// daemon that cannot start gets its D-Bus rows filled with the reason and is
// left out; so is one without a bus when needBus.
func (b *bench) startAll(scratch string, needBus bool) (ds []*daemon, versions []string) {
	for _, key := range b.cfg.daemons {
		d, err := startDaemon(b.cfg, key, scratch)
		if err != nil {
			b.logf("%s: cannot start: %v", key, err)
			b.fillDBus(key, cell{Text: "n/a", Note: "could not start: " + firstLineOf(err.Error())})
			versions = append(versions, key+": could not start: "+firstLineOf(err.Error()))
			continue
		}
		versions = append(versions, versionLine(d))
		if d.busConn == nil && needBus {
			b.fillDBus(key, na(d.noBus))
			d.shutdown()
			continue
		}
		ds = append(ds, d)
		b.logf("%s: %s, pid %d", key, d.label, d.pid())
	}
	return ds, versions
}

// fillDBus gives every D-Bus row of one daemon the same cell.
func (b *bench) fillDBus(key string, c cell) {
	for _, r := range b.rep.Rows {
		if r.Group == gDBus {
			r.Cells[key] = c
		}
	}
}

func shutdownAll(ds []*daemon) {
	for _, d := range ds {
		d.shutdown()
	}
}

// dbusPhase is the full run's last phase: the D-Bus rows, measured by duel.
func (b *bench) dbusPhase(scratch string) error {
	ds, _ := b.startAll(scratch, true)
	defer shutdownAll(ds)
	if len(ds) == 0 {
		return nil
	}
	return b.duel(ds)
}

// runDuel (-duel) starts every daemon, runs duel and prints the figures.
func (b *bench) runDuel(scratch string) error {
	ds, versions := b.startAll(scratch, true)
	defer shutdownAll(ds)
	if len(ds) == 0 {
		return errors.New("no daemon with a bus is running")
	}
	started := time.Now()
	if err := b.duel(ds); err != nil {
		return err
	}
	b.rep.Date = started.UTC().Format("2006-01-02 15:04 UTC") + fmt.Sprintf(" (%s)", time.Since(started).Round(time.Second))
	b.rep.Machine = machineInfo()
	b.rep.Versions = append(versions, "bus: "+firstLine("dbus-daemon", "--version")+" (host binary, one bus per daemon, same minimal config)")
	b.rep.Config = "-duel: " + duelMethod(b.cfg, len(ds))
	fmt.Println(b.rep.markdown())
	return nil
}

// duelMethod describes the D-Bus phase for the report.
func duelMethod(c config, daemons int) string {
	return fmt.Sprintf("all daemons running at once, each on its own bus; %d repetitions of %s per daemon and workload, interleaved in rotating order; "+
		"ListMachines with %s machines registered (plus .host); pairs take %s leaders per daemon in turn; "+
		"CPU per operation is the CPU time of the daemon's (or its dbus-daemon's) threads, from schedstat, over its own windows, divided by the operations done in them",
		c.duelReps, c.dur, count(c.dbusListSize), count(c.pairLeaders/max(daemons, 1)))
}
