package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/client"
	"github.com/machined-go/machined/service/persist"
)

// The chaos suite: `make chaos` runs it long (MACHINED_CHAOS_ROUNDS=20), `make
// test` runs the short version. Its figures are reported with t.Log, never
// asserted.

func chaosRounds() int {
	if n, err := strconv.Atoi(os.Getenv("MACHINED_CHAOS_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 3
}

// TestChaosCrashRounds SIGKILLs the daemon at a random moment of a
// registration storm in which leaders also die, restarts it, and checks after
// each round that every acknowledged machine with a live leader is back, none
// with a dead leader is, no state file is torn, and the state directory,
// Varlink List and D-Bus ListMachines agree.
func TestChaosCrashRounds(t *testing.T) {
	needRoot(t)
	d, bus := startBusDaemon(t, "--units", "none", "--log-level", "info")
	const workers, perWorker = 8, 6
	pool := make([][]*leader, workers)
	for w := range pool {
		for i := 0; i < perWorker; i++ {
			pool[w] = append(pool[w], spawnLeader(t))
		}
	}
	acked := map[string]int{} // name -> leader pid: registered, not unregistered
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	rounds := chaosRounds()
	var totalAcked, totalRestored int
	for round := 0; round < rounds; round++ {
		var mu sync.Mutex
		dead := map[int]bool{}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int, seed uint64) {
				defer wg.Done()
				r := rand.New(rand.NewPCG(seed, uint64(w)))
				c, err := client.Dial(context.Background(), d.sock())
				if err != nil {
					return
				}
				defer c.Close()
				for {
					select {
					case <-stop:
						return
					default:
					}
					i := r.IntN(perWorker)
					mu.Lock()
					l := pool[w][i]
					mu.Unlock()
					name := fmt.Sprintf("c%d-%d", w, i)
					var err error
					switch r.IntN(8) {
					case 0: // a leader dies while the daemon runs
						mu.Lock()
						l.kill()
						dead[l.pid] = true
						pool[w][i] = spawnLeader(t)
						mu.Unlock()
						continue
					case 1, 2, 3:
						mu.Lock()
						delete(acked, name) // an unacknowledged unregister may or may not have happened
						mu.Unlock()
						err = c.Unregister(context.Background(), client.ByName(name))
					default:
						err = c.Register(context.Background(), client.RegisterRequest{Name: name, Class: client.ClassContainer, LeaderPID: l.pid})
						if err == nil {
							mu.Lock()
							acked[name] = l.pid
							totalAcked++
							mu.Unlock()
						}
					}
					var ce *client.Error
					if err != nil && !errors.As(err, &ce) {
						return // the connection died with the daemon
					}
				}
			}(w, rng.Uint64())
		}
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond) // a random moment; not an assertion
		d.stop(syscall.SIGKILL)
		close(stop)
		wg.Wait()
		// Some leaders die while the daemon is down.
		for w := 0; w < workers; w++ {
			i := rng.IntN(perWorker)
			pool[w][i].kill()
			dead[pool[w][i].pid] = true
			pool[w][i] = spawnLeader(t)
		}
		d.start()
		waitBusName(t, bus)

		files := stateFiles(t, d)
		listed := listAll(t, d)
		onBus := listMachinesDBus(t, bus)
		for name := range listed {
			if !onBus[name] {
				t.Errorf("round %d: %s listed on Varlink but not by ListMachines", round, name)
			}
		}
		for name := range onBus {
			if _, ok := listed[name]; !ok {
				t.Errorf("round %d: %s listed by ListMachines but not on Varlink", round, name)
			}
		}
		for name, pid := range acked {
			got, ok := listed[name]
			switch {
			case dead[pid] && ok && got == pid:
				t.Errorf("round %d: %s came back with dead leader %d", round, name, pid)
			case !dead[pid] && !ok:
				t.Errorf("round %d: acknowledged machine %s (leader %d) lost", round, name, pid)
			}
		}
		for name, pid := range listed {
			if dead[pid] {
				t.Errorf("round %d: %s listed with dead leader %d", round, name, pid)
			}
			if _, ok := files[name]; !ok && name != ".host" {
				t.Errorf("round %d: %s listed but has no state file", round, name)
			}
		}
		for name := range files {
			if _, ok := listed[name]; !ok {
				t.Errorf("round %d: state file %s left for a machine that is not listed", round, name)
			}
		}
		// What is listed now is the truth the next round builds on.
		acked = map[string]int{}
		for name, pid := range listed {
			if name != ".host" {
				acked[name] = pid
			}
		}
		totalRestored += len(acked)
		if t.Failed() {
			break
		}
	}
	t.Logf("chaos: %d crash rounds, %d acknowledged registrations, %d machines restored over all restarts", rounds, totalAcked, totalRestored)
}

// listMachinesDBus returns the names ListMachines reports.
func listMachinesDBus(t *testing.T, bus *privateBus) map[string]bool {
	t.Helper()
	c := dbusConn(t, bus)
	defer c.Close()
	var ms []struct {
		Name, Class, Service string
		Path                 dbus.ObjectPath
	}
	if err := managerCall(t, c, "ListMachines").Store(&ms); err != nil {
		t.Fatalf("ListMachines: %v", err)
	}
	out := map[string]bool{}
	for _, m := range ms {
		out[m.Name] = true
	}
	return out
}

// stateFiles parses every state file; a torn or unparsable one fails the test.
func stateFiles(t *testing.T, d *daemon) map[string]persist.Record {
	t.Helper()
	out := map[string]persist.Record{}
	ents, _ := os.ReadDir(d.stateDir())
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, ".#"):
			t.Errorf("temp file left behind: %s", name)
			continue
		case strings.HasPrefix(name, "unit:"):
			continue
		}
		b, err := os.ReadFile(filepath.Join(d.stateDir(), name))
		if err != nil {
			t.Errorf("read state file %s: %v", name, err)
			continue
		}
		r, err := persist.Decode(name, b)
		if err != nil || r.Name != name || !bytes.HasSuffix(b, []byte("\n")) {
			t.Errorf("torn state file %s (%v): %q", name, err, b)
			continue
		}
		out[name] = r
	}
	return out
}

// listAll returns name -> leader pid of every listed machine.
func listAll(t *testing.T, d *daemon) map[string]int {
	t.Helper()
	c := oneShotClient(t, d)
	defer c.Close()
	out := map[string]int{}
	for m, err := range c.List(context.Background(), "") {
		if err != nil {
			t.Fatal(err)
		}
		out[m.Name] = 0
		if m.Leader != nil {
			out[m.Name] = m.Leader.PID
		}
	}
	return out
}

// TestChaosHostileLoad serves a well-behaved client while others open 1,000
// connections, stall mid-message, stop reading, send a 256 MiB message without
// terminator and flood fds. The well-behaved client must get every answer; the
// daemon's RSS, the client's p99 and the fd and goroutine counts are reported,
// and the counts must return to their baseline once the attackers leave.
func TestChaosHostileLoad(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "--units", "none", "--log-level", "info", "--idle-timeout", "20s")
	for i := 0; i < 100; i++ {
		registerReq(t, d, client.RegisterRequest{Name: fmt.Sprintf("h%d", i), LeaderPID: spawnLeader(t).pid, Service: strings.Repeat("s", 200)})
	}
	eventually(t, "the registrations' connections closed", func() bool { return d.stats(t).conns == 0 })
	base := d.stats(t)

	var rssPeak int
	stopRSS := make(chan struct{})
	rssDone := make(chan struct{})
	go func() {
		defer close(rssDone)
		for {
			if r := rssKiB(d.pid()); r > rssPeak {
				rssPeak = r
			}
			select {
			case <-stopRSS:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	// The well-behaved client: one connection, one call at a time.
	var lat []time.Duration
	var goodErr error
	goodStop := make(chan struct{})
	goodDone := make(chan struct{})
	go func() {
		defer close(goodDone)
		c, redialed, err := dialOneConn(d.sock())
		if err != nil {
			goodErr = err
			return
		}
		defer c.Close()
		for i := 0; ; i++ {
			select {
			case <-goodStop:
				return
			default:
			}
			t0 := time.Now()
			if _, err := c.Get(context.Background(), client.ByName(fmt.Sprintf("h%d", i%100)), ""); err != nil {
				goodErr = err
				return
			}
			if redialed() {
				goodErr = errors.New("the daemon closed the connection between calls")
				return
			}
			lat = append(lat, time.Since(t0))
			time.Sleep(2 * time.Millisecond)
		}
	}()

	var attackers sync.WaitGroup
	var held []net.Conn
	var heldMu sync.Mutex
	hold := func(c net.Conn) { heldMu.Lock(); held = append(held, c); heldMu.Unlock() }

	// 1,000 concurrent connections, each with one call answered and then held open.
	attackers.Add(1)
	go func() {
		defer attackers.Done()
		for i := 0; i < 1000; i++ {
			c, err := net.Dial("unix", d.sock())
			if err != nil {
				t.Errorf("connection %d refused: %v", i, err)
				return
			}
			hold(c)
			if _, err := roundTripRaw(c, `{"method":"io.systemd.service.Ping","parameters":{}}`); err != nil {
				t.Errorf("connection %d: %v", i, err)
				return
			}
		}
	}()
	// Stalled clients: half a message, then nothing.
	attackers.Add(1)
	go func() {
		defer attackers.Done()
		for i := 0; i < 50; i++ {
			if c, err := net.Dial("unix", d.sock()); err == nil {
				c.Write([]byte(`{"method":"io.systemd.Machine.Li`))
				hold(c)
			}
		}
	}()
	// Slow readers: pipelined List calls whose replies nobody reads.
	attackers.Add(1)
	go func() {
		defer attackers.Done()
		req := bytes.Repeat([]byte(`{"method":"io.systemd.Machine.List","parameters":{},"more":true}`+"\x00"), 200)
		for i := 0; i < 20; i++ {
			if c, err := net.Dial("unix", d.sock()); err == nil {
				c.SetWriteDeadline(time.Now().Add(2 * time.Second))
				c.Write(req)
				hold(c)
			}
		}
	}()
	// 256 MiB without a terminator: the daemon must hang up after 16 MiB.
	var sentBeforeClose int64
	attackers.Add(1)
	go func() {
		defer attackers.Done()
		c, err := net.Dial("unix", d.sock())
		if err != nil {
			return
		}
		defer c.Close()
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		c.SetWriteDeadline(time.Now().Add(60 * time.Second))
		for i := 0; i < 256; i++ {
			n, err := c.Write(chunk)
			sentBeforeClose += int64(n)
			if err != nil {
				return
			}
		}
		t.Error("256 MiB without terminator accepted in full")
	}()
	// fd flood: 16 fds a message, as fast as the daemon takes them.
	attackers.Add(1)
	go func() {
		defer attackers.Done()
		f, _ := os.Open("/dev/null")
		defer f.Close()
		fds := make([]int, 16)
		for i := range fds {
			fds[i] = int(f.Fd())
		}
		for k := 0; k < 20; k++ {
			c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: d.sock(), Net: "unix"})
			if err != nil {
				return
			}
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			for i := 0; i < 200; i++ {
				if _, _, err := c.WriteMsgUnix([]byte(`{"method":"io.systemd.service.Ping","parameters":{}}`+"\x00"), unix.UnixRights(fds...), nil); err != nil {
					break
				}
			}
			c.Close()
		}
	}()
	attackers.Wait()
	peak := d.stats(t)

	close(goodStop)
	<-goodDone
	if goodErr != nil {
		t.Errorf("the well-behaved client was not served: %v", goodErr)
	}
	heldMu.Lock()
	for _, c := range held {
		c.Close()
	}
	heldMu.Unlock()
	var after daemonStats
	eventually(t, "connections, fds and goroutines back to baseline", func() bool {
		after = d.stats(t)
		return after.conns <= base.conns && after.fds <= base.fds && after.goroutines <= base.goroutines
	})
	close(stopRSS)
	<-rssDone

	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(q*float64(len(lat)-1))]
	}
	t.Logf("chaos hostile load: well-behaved client %d calls, p50 %v, p99 %v, max %v", len(lat), p(0.5), p(0.99), p(1))
	t.Logf("chaos hostile load: daemon RSS peak %.1f MiB; fds %d → %d under attack → %d after; goroutines %d → %d → %d; oversized sender cut off after %d MiB",
		float64(rssPeak)/1024, base.fds, peak.fds, after.fds, base.goroutines, peak.goroutines, after.goroutines, sentBeforeClose>>20)
}

type daemonStats struct{ goroutines, fds, conns int }

var statsLine = regexp.MustCompile(`runtime stats goroutines="(\d+)" fds="(\d+)".*`)
var connsField = regexp.MustCompile(`connections_\w+="(\d+)"`)

// stats asks the daemon for its runtime figures (SIGUSR1) and reads them from
// its log.
func (d *daemon) stats(t *testing.T) daemonStats {
	t.Helper()
	logPath := filepath.Join(d.dir, "daemon.log")
	before, _ := os.ReadFile(logPath)
	d.cmd.Process.Signal(syscall.SIGUSR1)
	var line []byte
	eventually(t, "a runtime stats line", func() bool {
		b, _ := os.ReadFile(logPath)
		if len(b) <= len(before) {
			return false
		}
		all := statsLine.FindAll(b[len(before):], -1)
		if len(all) == 0 {
			return false
		}
		line = all[len(all)-1]
		return true
	})
	m := statsLine.FindSubmatch(line)
	var s daemonStats
	s.goroutines, _ = strconv.Atoi(string(m[1]))
	s.fds, _ = strconv.Atoi(string(m[2]))
	for _, c := range connsField.FindAllSubmatch(line, -1) {
		n, _ := strconv.Atoi(string(c[1]))
		s.conns += n
	}
	return s
}

// roundTripRaw sends one request and returns its reply, without a *testing.T:
// the attackers call it from their own goroutines.
func roundTripRaw(c net.Conn, msg string) (string, error) {
	c.SetDeadline(time.Now().Add(30 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(msg + "\x00")); err != nil {
		return "", err
	}
	r, err := readMessage(c)
	return string(r), err
}
