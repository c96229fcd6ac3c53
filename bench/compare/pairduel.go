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

const rowPairFloor = "bare C echo server, the same Register and Unregister requests, 1 connection (the floor)"

func rowPairFloorShare(present int) string {
	return fmt.Sprintf("%s: share of the floor", rowPairsAt(1, present))
}

// pairRows lists the rows of the pair phase in table order.
func (c config) pairRows() (rates []string) {
	for _, n := range c.pairSizes {
		rates = append(rates, rowPairsAt(1, n), rowPairsAt(c.conns, n), rowGoPairs(n))
	}
	return rates
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
	fail  map[string]error
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
		for _, d := range vds {
			if err := d.registerAll(names, b.userLeaders[registered:n]); err != nil {
				b.logf("%s: registering %d machines: %v", d.key, n, err)
				for _, p := range players {
					if p.d == d {
						p.fail = map[string]error{"": fmt.Errorf("registering %d machines: %w", n, err)}
					}
				}
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

// pairDuel runs the workloads at one level: for each workload, duelReps
// rounds in which every player has one window, in an order rotated from one
// round to the next.
func (b *bench) pairDuel(players []*pairPlayer, present int) {
	type workload struct {
		row    string
		echo   bool // the echo server takes part (the 1-connection lean workload)
		window func(p *pairPlayer) (pairs, refused, tried int, err error)
	}
	ws := []workload{
		{rowPairsAt(1, present), true, func(p *pairPlayer) (int, int, int, error) {
			return b.leanPairWindow(p, p.lean[:1])
		}},
		{rowPairsAt(b.cfg.conns, present), false, func(p *pairPlayer) (int, int, int, error) {
			return b.leanPairWindow(p, p.lean)
		}},
		{rowGoPairs(present), false, b.goPairWindow},
	}
	for _, w := range ws {
		var echoRates []float64
		for rep := range b.cfg.duelReps {
			var dRates = map[*pairPlayer]float64{}
			var echoRate float64
			for k := range players {
				p := players[(k+rep)%len(players)]
				if p.d == nil && !w.echo {
					continue
				}
				if p.fail[""] != nil || p.fail[w.row] != nil {
					continue
				}
				s := p.stat(w.row)
				var mark cpuMark
				if p.d != nil {
					mark = s.cpu.begin(p.d)
				}
				self0 := selfCPUNS()
				start := time.Now()
				pairs, refused, tried, err := w.window(p)
				el := time.Since(start)
				s.clientNS += selfCPUNS() - self0
				if err != nil {
					p.fail[w.row] = err
					continue
				}
				r := float64(pairs) / el.Seconds()
				if p.d == nil {
					echoRate = r
					echoRates = append(echoRates, r)
				} else {
					s.cpu.end(p.d, mark, pairs)
					s.rates = append(s.rates, r)
					s.refused += refused
					s.tried += tried
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
		if w.echo {
			for _, p := range players {
				if p.d == nil {
					continue
				}
				if len(echoRates) == 0 {
					b.set(gVarlink, rowPairFloor, "pairs/s", true, p.d, failed(errors.New("the echo server was not measured")))
					continue
				}
				b.set(gVarlink, rowPairFloor, "pairs/s", true, p.d, figure(median(echoRates), echoRates))
			}
		}
	}
}

// leanPairWindow runs pairs on the given connections for one window; each
// connection takes the player's leaders in turn.
func (b *bench) leanPairWindow(p *pairPlayer, vs []*vconn) (pairs, refused, tried int, err error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(vs))
	deadline := time.Now().Add(b.cfg.dur)
	take := func() pairReq {
		mu.Lock()
		defer mu.Unlock()
		r := p.reqs[p.next%len(p.reqs)]
		p.next++
		return r
	}
	counts := make([]struct{ pairs, refused int }, len(vs))
	for c, v := range vs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				r := take()
				if _, err := v.call(r.reg); err != nil {
					// Upstream refuses a leader whose previous machine it has not
					// cleaned up yet; count it and go on with the next leader.
					var ve *varlinkError
					if errors.As(err, &ve) && strings.HasPrefix(ve.name, "io.systemd.Machine.MachineExists") {
						counts[c].refused++
						continue
					}
					errs[c] = fmt.Errorf("Register: %w", err)
					return
				}
				if _, err := v.call(r.unreg); err != nil {
					errs[c] = fmt.Errorf("Unregister: %w", err)
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
		if err := p.fail[""]; err != nil {
			b.set(gVarlink, row, "pairs/s", true, p.d, failed(err))
			continue
		}
		if err := p.fail[row]; err != nil {
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
			b.set(gVarlink, rowPairFloorShare(presentOf(row, b.cfg)), "%", true, p.d, figure(median(s.floorShare), s.floorShare))
		}
	}
}

// presentOf finds the level a 1-connection row belongs to.
func presentOf(row string, c config) int {
	for _, n := range c.pairSizes {
		if row == rowPairsAt(1, n) {
			return n
		}
	}
	return 0
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
