package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/varlink/go/varlink"
)

// The lean client measures the daemon; these workloads measure what a Go
// program sees through github.com/varlink/go, which decodes every reply into a
// structure and frames with its own buffered reader: a different mix of
// round trips and reply sizes, which once told a different story.

// goCycleLeaders is how many leaders the varlink/go pair workload cycles
// through, as a program re-registering a few VMs would.
const goCycleLeaders = 10

func rowGoPairs(present int) string {
	return fmt.Sprintf("Register+Unregister pairs, varlink/go client, %d leaders cycling (class vm), %s machines present",
		goCycleLeaders, count(present))
}

func rowGoList(n int) string {
	return fmt.Sprintf("List (more), %s machines, varlink/go client", count(n))
}

type goRegisterParams struct {
	Name   string `json:"name"`
	Class  string `json:"class"`
	Leader int    `json:"leader"`
}

type goNameParams struct {
	Name string `json:"name"`
}

// goMachine is the part of a List reply a Go client would typically keep.
type goMachine struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	Class   string `json:"class"`
	Service string `json:"service"`
	Leader  *struct {
		PID int `json:"pid"`
	} `json:"leader"`
	Unit      string `json:"unit"`
	Timestamp *struct {
		Realtime  int64 `json:"realtime"`
		Monotonic int64 `json:"monotonic"`
	} `json:"timestamp"`
}

func goDial(sock string) (*varlink.Connection, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return varlink.NewConnection(ctx, "unix:"+sock)
}

// goPairs: Register+Unregister pairs through varlink/go on one connection,
// cycling through goCycleLeaders leaders with `present` machines registered.
func (b *bench) goPairs(d *daemon, present int) {
	name := rowGoPairs(present)
	if d.machineSock == "" {
		b.set(gVarlink, name, "pairs/s", true, d, na(d.noVarlink))
		return
	}
	c, err := goDial(d.machineSock)
	if err != nil {
		b.set(gVarlink, name, "pairs/s", true, d, failed(err))
		return
	}
	defer c.Close()
	ctx := context.Background()
	refused, tried, k, done := 0, 0, 0, 0
	cpu0 := cpuNS(d.pid())
	var out struct{}
	v, s, err := medianRate(b.cfg.reps, b.cfg.dur, 3, func() error {
		for {
			l := b.goLeaders[k%len(b.goLeaders)]
			k++
			n := machinePrefix + l.tag
			tried++
			err := c.Call(ctx, "io.systemd.Machine.Register", goRegisterParams{Name: n, Class: "vm", Leader: l.pid}, &out)
			var ve *varlink.Error
			if errors.As(err, &ve) && strings.HasPrefix(ve.Name, "io.systemd.Machine.MachineExists") {
				// Upstream refuses a leader until its deferred clean-up of the
				// previous machine has run; count it and take the next leader.
				refused++
				if refused > 1000 && refused == tried {
					return fmt.Errorf("every Register refused: %w", err)
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("Register: %w", err)
			}
			if err := c.Call(ctx, "io.systemd.Machine.Unregister", goNameParams{Name: n}, &out); err != nil {
				return fmt.Errorf("Unregister: %w", err)
			}
			done++
			return nil
		}
	})
	if err != nil {
		b.set(gVarlink, name, "pairs/s", true, d, failed(err))
		return
	}
	res := figure(v, s)
	if refused > 0 {
		res.Note = fmt.Sprintf("%s refused %s of %s Register calls of the varlink/go workload (%.1f%%) with MachineExists "+
			"(a leader is reused after %d pairs); the figure counts completed pairs only",
			d.key, count(refused), count(tried), 100*float64(refused)/float64(tried), goCycleLeaders)
	}
	b.set(gVarlink, name, "pairs/s", true, d, res)
	b.cpuPerOp(gVarlink, name, d, cpu0, done)
}

// goList: List with more of n machines (plus .host) through varlink/go,
// every reply decoded.
func (b *bench) goList(d *daemon, n int) {
	name := rowGoList(n)
	if d.machineSock == "" {
		b.set(gVarlink, name, "ms", false, d, na(d.noVarlink))
		return
	}
	c, err := goDial(d.machineSock)
	if err != nil {
		b.set(gVarlink, name, "ms", false, d, failed(err))
		return
	}
	defer c.Close()
	ctx := context.Background()
	calls := 0
	cpu0, self0 := cpuNS(d.pid()), selfCPUNS()
	med, s, err := latencies(b.cfg.reps, b.cfg.dur, 3, 2000, func() error {
		calls++
		recv, err := c.Send(ctx, "io.systemd.Machine.List", struct{}{}, varlink.More)
		if err != nil {
			return err
		}
		got := 0
		for {
			var m goMachine
			flags, err := recv(ctx, &m)
			if err != nil {
				return err
			}
			if m.Name == "" {
				return errors.New("List reply without a name")
			}
			got++
			if flags&varlink.Continues == 0 {
				break
			}
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
	b.cpuPerOp(gVarlink, name, d, cpu0, calls)
	if self := selfCPUNS(); self0 > 0 && calls > 0 {
		b.set(gVarlink, rowClientCPU(name), "µs", false, d, figure(float64(self-self0)/1e3/float64(calls), nil))
	}
}
