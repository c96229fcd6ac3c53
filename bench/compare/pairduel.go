package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/varlink/go/varlink"
)

// The Varlink Register+Unregister pairs are a ping-pong: the client waits for
// each reply before it sends the next request, so every call wakes the daemon
// and then the client. On this VM a wake-up that crosses to the other vCPU
// costs more than either daemon's own work, and whether the scheduler keeps
// client and daemon on one vCPU changes from one second to the next. Run in
// each daemon's turn, minutes apart, the pair rows moved by a third between
// runs. So they are measured like the D-Bus rows: every daemon that speaks
// Varlink up at once with the same machines present, each repetition giving
// every daemon one window in rotating order, and beside them the bare echo
// server answering the same requests on one connection: the floor, which is
// what a server that does no work at all reaches under the same wake-ups.

func rowPairsAt(conns, present int) string {
	return fmt.Sprintf("%s, %s machines present", rowPairs(conns), count(present))
}

func rowPairFloor(pl placement) string {
	return "bare C echo server, the same Register and Unregister requests, 1 connection" + pl.suffix() + " (the floor)"
}

func rowFloorShare(row string) string { return row + ": share of the floor" }

// pairWorkload is one row of the pair phase.
type pairWorkload struct {
	row     string
	present int // machines registered meanwhile
	conns   int // lean client connections; 0: varlink/go's client
	pl      placement
}

// echo: the echo server takes part in the 1-connection lean workloads.
func (w pairWorkload) echo() bool { return w.conns == 1 }

// pairWorkloads lists the phase's workloads in table order: at each level
// the lean client on 1 and on -conns connections and varlink/go's client;
// at the first level also the 1-connection pairs pinned each way.
func (c config) pairWorkloads() []pairWorkload {
	var ws []pairWorkload
	for i, n := range c.pairSizes {
		ws = append(ws, pairWorkload{rowPairsAt(1, n), n, 1, placements[0]})
		if i == 0 {
			for _, pl := range placements[1:] {
				ws = append(ws, pairWorkload{rowPairsAt(1, n) + pl.suffix(), n, 1, pl})
			}
		}
		ws = append(ws, pairWorkload{rowPairsAt(c.conns, n), n, c.conns, placements[0]},
			pairWorkload{rowGoPairs(n), n, 0, placements[0]})
	}
	return ws
}

// pairRows lists the rate rows of the pair phase in table order.
func (c config) pairRows() (rows []string) {
	for _, w := range c.pairWorkloads() {
		rows = append(rows, w.row)
	}
	return rows
}

// pairPlayer is one participant of the phase: a daemon, or the echo server
// (d nil), with the connections and leaders its windows use.
type pairPlayer struct {
	key   string
	d     *daemon
	lean  []*vconn // lean[0] alone for the 1-connection workload
	goc   *varlink.Connection
	reqs  []pairReq // its own share of the pair leaders
	next  int
	goK   int
	down  error            // why the player takes no more windows at all
	fail  map[string]error // why it takes no more windows of a workload, by row
	stats map[string]*pairStats
}

type pairReq struct{ reg, unreg []byte }

// pairStats gathers one workload's windows for one player.
type pairStats struct {
	rates          []float64
	cpu            cpuTally
	clientNS       int64 // the harness's own CPU over the same windows
	refused, tried int
	floorShare     []float64 // 1-connection rate over the echo server's in the same round
}

func (p *pairPlayer) stat(row string) *pairStats {
	if p.stats[row] == nil {
		p.stats[row] = &pairStats{}
	}
	return p.stats[row]
}

func (p *pairPlayer) close() {
	for _, v := range p.lean {
		v.Close()
	}
	if p.goc != nil {
		p.goc.Close()
	}
}

// pairPhase starts every daemon that speaks Varlink, registers the machines of
// each -pair-sizes level in all of them and measures the pair workloads
// interleaved at each level.
func (b *bench) pairPhase(scratch string) {
	ds, _ := b.startAll(scratch, false)
	defer shutdownAll(ds)
	var vds []*daemon
	for _, d := range ds {
		if d.machineSock == "" {
			for _, row := range b.cfg.pairRows() {
				b.set(gVarlink, row, "pairs/s", true, d, na(d.noVarlink))
			}
			continue
		}
		vds = append(vds, d)
	}
	if len(vds) == 0 {
		return
	}
	players, err := b.pairPlayers(vds)
	defer func() {
		for _, p := range players {
			p.close()
		}
	}()
	if err != nil {
		b.logf("pair phase: %v", err)
		for _, d := range vds {
			for _, row := range b.cfg.pairRows() {
				b.set(gVarlink, row, "pairs/s", true, d, failed(err))
			}
		}
		return
	}
	registered := 0
	for _, n := range b.cfg.pairSizes {
		names := make([]string, 0, n-registered)
		for i := registered; i < n; i++ {
			names = append(names, machineName(i))
		}
		for _, p := range players {
			if p.d == nil || p.down != nil {
				continue
			}
			if err := p.d.registerAll(names, b.userLeaders[registered:n]); err != nil {
				b.logf("%s: registering %d machines: %v", p.key, n, err)
				p.down = fmt.Errorf("registering %d machines: %w", n, err)
			}
		}
		registered = n
		time.Sleep(memSettle)
		b.pairDuel(players, n)
	}
	for _, p := range players {
		if p.d != nil {
			b.reportPairs(p)
		}
	}
}

// pairPlayers opens every daemon's connections, and the echo server's.
func (b *bench) pairPlayers(vds []*daemon) ([]*pairPlayer, error) {
	share := len(b.pairPool) / len(vds)
	if share < 1 {
		return nil, errors.New("fewer pair leaders than daemons")
	}
	var ps []*pairPlayer
	for i, d := range vds {
		p := &pairPlayer{key: d.key, d: d, fail: map[string]error{}, stats: map[string]*pairStats{}}
		ps = append(ps, p)
		for range b.cfg.conns {
			v, err := vdial(d.machineSock)
			if err != nil {
				return ps, fmt.Errorf("%s: %w", d.key, err)
			}
			p.lean = append(p.lean, v)
		}
		var err error
		if p.goc, err = goDial(d.machineSock); err != nil {
			return ps, fmt.Errorf("%s: varlink/go: %w", d.key, err)
		}
		for _, l := range b.pairPool[i*share : (i+1)*share] {
			n := machinePrefix + l.tag
			p.reqs = append(p.reqs, pairReq{registerReq(n, l.pid), unregisterReq(n)})
		}
	}
	if b.echo != nil {
		v, err := vdial(b.echo.sock)
		if err != nil {
			return ps, fmt.Errorf("echo server: %w", err)
		}
		p := &pairPlayer{key: "echo", lean: []*vconn{v}, reqs: ps[0].reqs, fail: map[string]error{}, stats: map[string]*pairStats{}}
		ps = append(ps, p)
	}
	return ps, nil
}

// pairDuel runs the workloads of one level: for each, duelReps rounds in
// which every player has one window, in an order rotated from one round to
// the next.
func (b *bench) pairDuel(players []*pairPlayer, present int) {
	for _, w := range b.cfg.pairWorkloads() {
		if w.present != present {
			continue
		}
		window := b.goPairWindow
		if w.conns > 0 {
			window = func(p *pairPlayer) (int, int, int, error) { return b.leanPairWindow(p, p.lean[:w.conns]) }
		}
		var echoRates []float64
		for rep := range b.cfg.duelReps {
			dRates := map[*pairPlayer]float64{}
			var echoRate float64
			for k := range players {
				p := players[(k+rep)%len(players)]
				if (p.d == nil && !w.echo()) || p.down != nil || p.fail[w.row] != nil {
					continue
				}
				r, err := b.pairWindow(p, w, window)
				if err != nil {
					p.fail[w.row] = err
					continue
				}
				if p.d == nil {
					echoRate = r
					echoRates = append(echoRates, r)
				} else {
					dRates[p] = r
				}
				time.Sleep(50 * time.Millisecond)
			}
			if echoRate > 0 {
				for p, r := range dRates {
					s := p.stat(w.row)
					s.floorShare = append(s.floorShare, 100*r/echoRate)
				}
			}
		}
		if !w.echo() {
			continue
		}
		floor := figure(median(echoRates), echoRates)
		if len(echoRates) == 0 {
			floor = failed(errors.New("the echo server was not measured"))
		}
		for _, p := range players {
			if p.d != nil {
				b.set(gVarlink, rowPairFloor(w.pl), "pairs/s", true, p.d, floor)
			}
		}
	}
}

// pairWindow runs one window of w for p, placed as w says, and records it;
// it returns the pairs per second.
func (b *bench) pairWindow(p *pairPlayer, w pairWorkload, window func(*pairPlayer) (int, int, int, error)) (float64, error) {
	if w.pl.serverCPU >= 0 {
		restore, err := b.place(p, w.pl.serverCPU)
		defer restore()
		if err != nil {
			return 0, err
		}
	}
	s := p.stat(w.row)
	var mark cpuMark
	if p.d != nil {
		mark = s.cpu.begin(p.d)
	}
	self0 := selfCPUNS()
	start := time.Now()
	pairs, refused, tried, err := window(p)
	el := time.Since(start)
	s.clientNS += selfCPUNS() - self0
	if err != nil {
		return 0, err
	}
	if p.d != nil {
		s.cpu.end(p.d, mark, pairs)
		s.rates = append(s.rates, float64(pairs)/el.Seconds())
		s.refused += refused
		s.tried += tried
	}
	return float64(pairs) / el.Seconds(), nil
}

// place pins the harness to CPU 0 and p's server to cpu until restore.
func (b *bench) place(p *pairPlayer, cpu int) (restore func(), err error) {
	pid := b.echo.cmd.Process.Pid
	if p.d != nil {
		pid = p.d.pid()
	}
	return pinTo(cpu, pid)
}

// leanPairWindow runs pairs on the given connections for one window; each
// connection takes the player's leaders in turn.
func (b *bench) leanPairWindow(p *pairPlayer, vs []*vconn) (pairs, refused, tried int, err error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(vs))
	deadline := time.Now().Add(b.cfg.dur)
	// A leader still in a pair on another connection is passed over: with
	// many connections, one that stalls could otherwise meet its own leader
	// again on another, and the refusal would be the harness's doing.
	inFlight := map[int]bool{}
	take := func() int {
		mu.Lock()
		defer mu.Unlock()
		for {
			i := p.next % len(p.reqs)
			p.next++
			if !inFlight[i] {
				inFlight[i] = true
				return i
			}
		}
	}
	release := func(i int) {
		mu.Lock()
		defer mu.Unlock()
		delete(inFlight, i)
	}
	counts := make([]struct{ pairs, refused int }, len(vs))
	for c, v := range vs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				i := take()
				err := b.leanPair(v, p.reqs[i])
				release(i)
				if err != nil {
					if errors.Is(err, errRefused) {
						counts[c].refused++
						continue
					}
					errs[c] = err
					return
				}
				counts[c].pairs++
			}
		}()
	}
	wg.Wait()
	for _, n := range counts {
		pairs += n.pairs
		refused += n.refused
	}
	return pairs, refused, pairs + refused, errors.Join(errs...)
}

// errRefused: the daemon refused a Register with MachineExists.
var errRefused = errors.New("refused with MachineExists")

// leanPair registers and unregisters r's machine on v.
func (b *bench) leanPair(v *vconn, r pairReq) error {
	if _, err := v.call(r.reg); err != nil {
		// Upstream refuses a leader whose previous machine it has not
		// cleaned up yet; the caller counts it and goes on with the next.
		var ve *varlinkError
		if errors.As(err, &ve) && strings.HasPrefix(ve.name, "io.systemd.Machine.MachineExists") {
			return errRefused
		}
		return fmt.Errorf("Register: %w", err)
	}
	if _, err := v.call(r.unreg); err != nil {
		return fmt.Errorf("Unregister: %w", err)
	}
	return nil
}

// goPairWindow runs varlink/go pairs for one window, cycling through
// goCycleLeaders leaders.
func (b *bench) goPairWindow(p *pairPlayer) (pairs, refused, tried int, err error) {
	ctx := context.Background()
	var out struct{}
	deadline := time.Now().Add(b.cfg.dur)
	for time.Now().Before(deadline) {
		l := b.goLeaders[p.goK%len(b.goLeaders)]
		p.goK++
		n := machinePrefix + l.tag
		tried++
		err := p.goc.Call(ctx, "io.systemd.Machine.Register", goRegisterParams{Name: n, Class: "vm", Leader: l.pid}, &out)
		var ve *varlink.Error
		if errors.As(err, &ve) && strings.HasPrefix(ve.Name, "io.systemd.Machine.MachineExists") {
			// Upstream refuses a leader until its deferred clean-up of the
			// previous machine has run; count it and take the next leader.
			refused++
			if refused > 1000 && refused == tried {
				return pairs, refused, tried, fmt.Errorf("every Register refused: %w", err)
			}
			continue
		}
		if err != nil {
			return pairs, refused, tried, fmt.Errorf("Register: %w", err)
		}
		if err := p.goc.Call(ctx, "io.systemd.Machine.Unregister", goNameParams{Name: n}, &out); err != nil {
			return pairs, refused, tried, fmt.Errorf("Unregister: %w", err)
		}
		pairs++
	}
	return pairs, refused, tried, nil
}

// reportPairs sets a daemon's rows of the pair phase.
func (b *bench) reportPairs(p *pairPlayer) {
	for _, row := range b.cfg.pairRows() {
		err := p.down
		if err == nil {
			err = p.fail[row]
		}
		if err != nil {
			b.set(gVarlink, row, "pairs/s", true, p.d, failed(err))
			continue
		}
		s := p.stats[row]
		if s == nil || len(s.rates) == 0 {
			continue
		}
		c := figure(median(s.rates), s.rates)
		if s.refused > 0 {
			c.Note = fmt.Sprintf("%s refused %s of %s Register calls (%.1f%%) with MachineExists: a leader whose machine was just "+
				"unregistered stays indexed until the daemon's deferred clean-up runs; the figure counts completed pairs only",
				p.key, count(s.refused), count(s.tried), 100*float64(s.refused)/float64(s.tried))
		}
		b.set(gVarlink, row, "pairs/s", true, p.d, c)
		b.set(gVarlink, rowCPU(row), "µs", false, p.d, s.cpu.perOp(false))
		if s.cpu.ops > 0 {
			b.set(gVarlink, rowClientCPU(row), "µs", false, p.d, figure(float64(s.clientNS)/1e3/float64(s.cpu.ops), nil))
		}
		if len(s.floorShare) > 0 {
			b.set(gVarlink, rowFloorShare(row), "%", true, p.d, figure(median(s.floorShare), s.floorShare))
		}
	}
}

// pairMethod describes the pair phase for the report.
func pairMethod(c config, daemons int) string {
	return fmt.Sprintf("Varlink pairs: every daemon with Varlink running at once (each on its own bus, as in the D-Bus phase), the same machines present in each; "+
		"%d repetitions of %s per daemon and workload, interleaved in rotating order, the bare echo server taking part in the 1-connection rounds; "+
		"the lean client takes %s leaders per daemon in turn, varlink/go cycles through %d",
		c.duelReps, c.dur, count(c.pairLeaders/max(daemons, 1)), goCycleLeaders)
}

// varlinkDaemons counts the daemons of the run that speak Varlink (252 does not).
func varlinkDaemons(c config) int {
	n := 0
	for _, d := range c.daemons {
		if d != "252" {
			n++
		}
	}
	return n
}
