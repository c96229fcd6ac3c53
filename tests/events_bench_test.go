package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/machined-go/machined/client"
	"golang.org/x/sys/unix"
)

// Benchmarks of the event stream (io.github.machinedgo.MachineEvents) against
// the built daemon: a registration storm on a few connections while
// subscribers read, or while one subscriber never reads.

// stormConns is how many connections the storm spreads its pairs over;
// stormNames how many machine names each connection cycles through.
const stormConns, stormNames = 4, 16

// stormConn is the lean client of bench_test.go made safe for goroutines: it
// returns errors instead of failing the benchmark, which only the
// benchmark's own goroutine may do.
type stormConn struct {
	f  *os.File
	br *bufio.Reader
}

func dialStorm(b *testing.B, path string) *stormConn {
	b.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		b.Fatal(err)
	}
	// A blocking fd: os.File then reads and writes with plain syscalls,
	// outside the netpoller, as leanConn does.
	f := os.NewFile(uintptr(fd), "storm")
	b.Cleanup(func() { f.Close() })
	return &stormConn{f: f, br: bufio.NewReaderSize(f, 64<<10)}
}

func (c *stormConn) call(req []byte) error {
	if _, err := c.f.Write(req); err != nil {
		return err
	}
	r, err := c.br.ReadBytes(0)
	if err != nil {
		return err
	}
	if bytes.Contains(r, []byte(`"error":`)) {
		return fmt.Errorf("error reply: %s", r)
	}
	return nil
}

// stormRequests are the Register and Unregister requests of connection g's
// pairs: pair i registers ev<g>-<i mod stormNames>, then unregisters it. A
// process leads one machine at a time, so connection g has leader g of the
// farm to itself.
func stormRequests(f *leaderFarm, g, pairs int) (reg, unreg [][]byte) {
	pid := f.pids[g]
	for i := range pairs {
		name := fmt.Sprintf("ev%d-%d", g, i%stormNames)
		reg = append(reg, []byte(fmt.Sprintf(`{"method":"io.systemd.Machine.Register","parameters":{"name":"%s","class":"container","leader":%d}}`+"\x00", name, pid)))
		unreg = append(unreg, []byte(`{"method":"io.systemd.Machine.Unregister","parameters":{"name":"`+name+`"}}`+"\x00"))
	}
	return reg, unreg
}

// storm runs n Register+Unregister pairs spread over stormConns connections,
// the requests built before it starts so that the storm measures the calls.
func storm(b *testing.B, d *daemon, f *leaderFarm, n int) func() error {
	b.Helper()
	type work struct {
		c          *stormConn
		reg, unreg [][]byte
	}
	ws := make([]work, stormConns)
	for g := range ws {
		ws[g].c = dialStorm(b, d.sock())
		ws[g].reg, ws[g].unreg = stormRequests(f, g, n/stormConns+btoi(g < n%stormConns))
	}
	return func() error {
		var wg sync.WaitGroup
		errs := make(chan error, stormConns)
		for _, w := range ws {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range w.reg {
					if err := w.c.call(w.reg[i]); err != nil {
						errs <- fmt.Errorf("register: %w", err)
						return
					}
					if err := w.c.call(w.unreg[i]); err != nil {
						errs <- fmt.Errorf("unregister: %w", err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
}

func btoi(v bool) int {
	if v {
		return 1
	}
	return 0
}

// endMarker is the machine registered and unregistered after the storm: the
// changes come in order, so its removal tells a subscriber that nothing of the
// storm is still on its way, and a lost change fails the benchmark instead of
// leaving it waiting.
const endMarker = "ev-end"

// markEnd registers and unregisters endMarker.
func markEnd(c *stormConn, f *leaderFarm) error {
	if err := c.call([]byte(fmt.Sprintf(`{"method":"io.systemd.Machine.Register","parameters":{"name":"%s","class":"container","leader":%d}}`+"\x00", endMarker, f.pids[0]))); err != nil {
		return err
	}
	return c.call([]byte(`{"method":"io.systemd.Machine.Unregister","parameters":{"name":"` + endMarker + `"}}` + "\x00"))
}

// subscriber reads the stream up to endMarker's removal and checks that it saw
// want changes before it, all registrations and removals, each name going
// registered, removed, registered… as the storm made it. It returns when it
// had the storm's last change.
func subscriber(ctx context.Context, cl *client.Client, want int, ready chan<- struct{}) (time.Time, error) {
	var done time.Time
	last := map[string]client.EventKind{}
	got := 0
	snapshot := true
	for ev, err := range cl.Subscribe(ctx, client.SubscribeOptions{}) {
		if errors.Is(err, client.ErrBacklogExceeded) {
			// The documented drop, not a lost event: emitting never waits,
			// and the storm outran this reader on this machine.
			return done, fmt.Errorf("dropped after %d changes, more than the backlog behind the storm: %w", got, err)
		}
		if err != nil {
			return done, fmt.Errorf("after %d changes: %w", got, err)
		}
		if snapshot {
			if ev.Kind == client.EventSnapshotComplete {
				snapshot = false
				ready <- struct{}{}
			}
			continue
		}
		if ev.Machine == nil {
			return done, fmt.Errorf("change %d: %+v without a machine", got, ev)
		}
		if ev.Machine.Name == endMarker {
			if ev.Kind != client.EventRemoved {
				continue
			}
			if got != want {
				return done, fmt.Errorf("saw %d changes, want %d", got, want)
			}
			for name, k := range last {
				if k != client.EventRemoved {
					return done, fmt.Errorf("%s left %s", name, k)
				}
			}
			return done, nil
		}
		prev := last[ev.Machine.Name]
		switch {
		case ev.Kind == client.EventRegistered && (prev == "" || prev == client.EventRemoved):
		case ev.Kind == client.EventRemoved && prev == client.EventRegistered && ev.Reason == client.RemovedUnregistered:
		default:
			return done, fmt.Errorf("change %d: %s %s %s after %q", got, ev.Kind, ev.Machine.Name, ev.Reason, prev)
		}
		last[ev.Machine.Name] = ev.Kind
		if got++; got == want {
			done = time.Now()
		}
	}
	return done, errors.New("the stream ended")
}

// benchEvents: b.N pairs of the storm while subs subscribers, each with a
// connection of its own, read every event. The time runs until the last
// subscriber has its last event.
func benchEvents(b *testing.B, subs int) {
	d := benchDaemon(b)
	f := startFarm(b, stormConns)
	run := storm(b, d, f, b.N)
	marker := dialStorm(b, d.sock())
	cl, err := client.Dial(context.Background(), d.sock())
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		done time.Time
		err  error
	}
	ready := make(chan struct{}, subs)
	results := make(chan result, subs)
	for range subs {
		go func() {
			done, err := subscriber(ctx, cl, 2*b.N, ready)
			results <- result{done, err}
		}()
	}
	for range subs {
		select {
		case <-ready:
		case r := <-results:
			b.Fatal(r.err)
		}
	}

	b.ResetTimer()
	cpu0 := cpuTime(b, d.pid())
	start := time.Now()
	if err := run(); err != nil {
		b.Fatal(err)
	}
	stormTime := time.Since(start)
	if err := markEnd(marker, f); err != nil {
		b.Fatal(err)
	}
	var last time.Time
	for range subs {
		r := <-results
		if r.err != nil {
			b.Fatal(r.err)
		}
		if r.done.After(last) {
			last = r.done
		}
	}
	b.StopTimer()
	daemonCPU := cpuTime(b, d.pid()) - cpu0

	perSub := float64(2*b.N) / last.Sub(start).Seconds()
	b.ReportMetric(float64(b.N)/stormTime.Seconds(), "pairs/s")
	b.ReportMetric(perSub, "events/s/sub")
	b.ReportMetric(perSub*float64(subs), "events/s")
	// The daemon's CPU time (registrations and deliveries together) per
	// delivered event tells its share of the cost from the subscribers'
	// clients', which run in this process and compete for the same CPUs.
	b.ReportMetric(daemonCPU.Seconds()*1e6/float64(2*b.N*subs), "daemon-CPU-µs/delivery")
}

// cpuTime is the user and system time pid has used, at the kernel's clock tick.
func cpuTime(b *testing.B, pid int) time.Duration {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command's closing parenthesis; utime and stime are the
	// 14th and 15th fields of the line.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / time.Duration(clockTicks)
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on the
// architectures the daemon is built for.
const clockTicks = 100

func BenchmarkEventsSubscribers1(b *testing.B)   { benchEvents(b, 1) }
func BenchmarkEventsSubscribers100(b *testing.B) { benchEvents(b, 100) }

// The storm's pairs/s without subscribers and with one that subscribes, takes
// its snapshot and then reads nothing while the storm runs. Read afterwards,
// the stalled one either has every change waiting or, once its backlog was
// exceeded, ends with BacklogExceeded (backlog-exceeded 1).
func BenchmarkEventsRegisterWithStalledSubscriber(b *testing.B) {
	b.Run("subscribers=0", func(b *testing.B) {
		d := benchDaemon(b)
		run := storm(b, d, startFarm(b, stormConns), b.N)
		b.ResetTimer()
		if err := run(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
	})
	b.Run("stalled=1", func(b *testing.B) {
		d := benchDaemon(b)
		f := startFarm(b, stormConns)
		run := storm(b, d, f, b.N)
		marker := dialStorm(b, d.sock())
		s := dialStorm(b, d.sock())
		if _, err := s.f.Write([]byte(`{"method":"` + eventsSubscribe + `","parameters":{},"more":true}` + "\x00")); err != nil {
			b.Fatal(err)
		}
		for {
			r, err := s.br.ReadBytes(0)
			if err != nil {
				b.Fatal(err)
			}
			if bytes.Contains(r, []byte(`"event":"snapshotComplete"`)) {
				break
			}
		}
		b.ResetTimer()
		if err := run(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")

		if err := markEnd(marker, f); err != nil {
			b.Fatal(err)
		}
		exceeded, changes := 0, 0
		for {
			r, err := s.br.ReadBytes(0)
			if err != nil {
				b.Fatalf("stalled subscriber after %d changes: %v", changes, err)
			}
			var w struct {
				Parameters struct {
					Event   string `json:"event"`
					Machine struct {
						Name string `json:"name"`
					} `json:"machine"`
				} `json:"parameters"`
				Error string `json:"error"`
			}
			if err := json.Unmarshal(r[:len(r)-1], &w); err != nil {
				b.Fatalf("stalled subscriber after %d changes: %v", changes, err)
			}
			if w.Error == "io.github.machinedgo.MachineEvents.BacklogExceeded" {
				exceeded = 1
				break
			}
			if w.Error != "" {
				b.Fatalf("stalled subscriber after %d changes: %s", changes, r)
			}
			if w.Parameters.Machine.Name == endMarker && w.Parameters.Event == "removed" {
				if changes != 2*b.N+1 {
					b.Fatalf("stalled subscriber got %d changes before the marker's removal, want %d", changes, 2*b.N+1)
				}
				break
			}
			changes++
		}
		b.ReportMetric(float64(exceeded), "backlog-exceeded")
	})
}
