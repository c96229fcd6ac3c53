package main

import (
	"context"
	"errors"
	"fmt"
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
