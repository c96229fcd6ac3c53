package machine1

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/dbusshim/busconn"
	"github.com/machined-go/machined/service"
)

// A forwarder that falls behind (here: its watch holds two events and five
// changes come) watches again and emits the difference between the names it
// knew and the registry's: MachineNew for each machine that came, MachineRemoved
// for each that went, each once.
func TestForwarderResynchronizes(t *testing.T) {
	e := newEnv(t)
	root := service.Caller{UID: 0, PIDFD: -1}
	ctx := context.Background()
	if _, err := e.mgr.Register(ctx, root, service.RegisterRequest{Name: "gone", Class: "vm", Leader: sleeper(t).Process.Pid}); err != nil {
		t.Fatal(err)
	}
	conn, err := busconn.Dial(e.addr, busconn.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := e.client.AddMatchSignal(dbus.WithMatchSender(conn.Names()[0])); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan *dbus.Signal, 64)
	e.client.Signal(sigs)

	snap, w := e.mgr.Watch(2)
	if err := e.mgr.Unregister(ctx, root, service.Selector{Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := e.mgr.Register(ctx, root, service.RegisterRequest{Name: fmt.Sprintf("new%d", i), Class: "vm", Leader: sleeper(t).Process.Pid}); err != nil {
			t.Fatal(err)
		}
	}
	srv := New(Config{})
	done := make(chan struct{})
	go func() { defer close(done); srv.forwardEvents(conn, e.mgr, snap, w) }()
	defer func() { srv.Close(); <-done }()

	want := map[string]bool{"MachineRemoved gone": true, "MachineNew new0": true, "MachineNew new1": true, "MachineNew new2": true, "MachineNew new3": true}
	timeout := time.After(20 * time.Second)
	for len(want) > 0 {
		select {
		case s := <-sigs:
			if s.Sender != conn.Names()[0] {
				continue
			}
			if len(s.Body) != 2 || s.Body[1] != MachinePath(s.Body[0].(string)) {
				t.Fatalf("signal %s %v", s.Name, s.Body)
			}
			key := s.Name[len(managerIface)+1:] + " " + s.Body[0].(string)
			if !want[key] {
				t.Fatalf("unexpected or repeated signal %s", key)
			}
			delete(want, key)
		case <-timeout:
			t.Fatalf("signals never sent: %v", want)
		}
	}
	// Once resynchronized, it forwards as before.
	if _, err := e.mgr.Register(ctx, root, service.RegisterRequest{Name: "later", Class: "vm", Leader: sleeper(t).Process.Pid}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case s := <-sigs:
			if s.Sender != conn.Names()[0] {
				continue
			}
			if s.Name != managerIface+".MachineNew" || s.Body[0] != "later" {
				t.Fatalf("signal %s %v, want MachineNew later", s.Name, s.Body)
			}
			return
		case <-timeout:
			t.Fatal("no MachineNew for a registration after the resynchronization")
		}
	}
}

// A sent batch is emptied of its names and reused, unless it grew past
// signalsKept: then it is let go, so that one long lag does not leave an array
// of its size behind.
func TestReuseSignalsKeepsSmallBatches(t *testing.T) {
	small := make([]busconn.Signal, 0, signalsKept)
	small = append(small, machineSignal(signalMachineNew, "a"), machineSignal(signalMachineRemoved, "b"))
	got := reuseSignals(small)
	if len(got) != 0 || cap(got) != signalsKept || &got[:1][0] != &small[0] {
		t.Fatalf("a batch within the bound was not reused: len %d cap %d", len(got), cap(got))
	}
	if small[0].Body != nil || small[1].Body != nil {
		t.Errorf("the reused batch still holds the names: %v %v", small[0].Body, small[1].Body)
	}

	big := make([]busconn.Signal, signalsKept+1)
	if got := reuseSignals(big); got != nil {
		t.Errorf("a batch of %d was kept (cap %d)", len(big), cap(got))
	}
}
