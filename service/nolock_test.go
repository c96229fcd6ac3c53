package service

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// blockingUnits is a unit back end that, once blocking is set, makes every call
// wait until release is closed, as a service manager that does not answer would.
type blockingUnits struct {
	blocking atomic.Bool
	entered  chan string // one value per call that started waiting
	release  chan struct{}
}

func (b *blockingUnits) wait(what string) {
	if b.blocking.Load() {
		b.entered <- what
		<-b.release
	}
}

func (*blockingUnits) Name() string { return "blocking" }
func (b *blockingUnits) CreateScope(context.Context, ScopeRequest) error {
	b.wait("CreateScope")
	return nil
}
func (b *blockingUnits) Stop(context.Context, string) error {
	b.wait("Stop")
	return nil
}
func (b *blockingUnits) Kill(context.Context, string, string, syscall.Signal) error {
	b.wait("Kill")
	return nil
}
func (b *blockingUnits) Release(string) {}

// A registration stuck in the unit back end (a service manager that does not
// answer) must not hold up the rest of the registry: listings, lookups by PID,
// unregistrations and a leader's exit all go on while it waits.
func TestNoRegistryLockAcrossUnitBackend(t *testing.T) {
	units := &blockingUnits{entered: make(chan string, 8), release: make(chan struct{})}
	m, err := New(Config{StateDir: filepath.Join(t.TempDir(), "machines"), HostMachine: true, Units: units})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	a, b := startSleep(t), startSleep(t)
	for name, p := range map[string]int{"a": a.Process.Pid, "b": b.Process.Pid} {
		if _, err := m.Register(context.Background(), root, RegisterRequest{Name: name, Class: "vm", Leader: p}); err != nil {
			t.Fatal(err)
		}
	}

	units.blocking.Store(true)
	t.Cleanup(func() {
		select {
		case <-units.release:
		default:
			close(units.release)
		}
	})
	stuck := startSleep(t)
	regDone := make(chan error, 1)
	go func() {
		_, err := m.Register(context.Background(), root, RegisterRequest{Name: "stuck", Class: "vm", Leader: stuck.Process.Pid, AllocateUnit: true})
		regDone <- err
	}()
	select {
	case <-units.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the registration never reached the unit back end")
	}

	steps := []struct {
		what string
		do   func() error
	}{
		{"List", func() error {
			if n := len(m.List()); n != 3 {
				t.Errorf("List: %d machines, want .host, a and b", n)
			}
			return nil
		}},
		{"GetByPID", func() error { _, err := m.GetByPID(root, a.Process.Pid); return err }},
		{"GetByPID of a process in no machine", func() error {
			if _, err := m.GetByPID(root, stuck.Process.Pid); !errors.Is(err, ErrNoMachineForPID) {
				t.Errorf("GetByPID of the stuck leader: %v, want ErrNoMachineForPID", err)
			}
			return nil
		}},
		{"Get by pid", func() error { _, err := m.Get(root, Selector{HasPID: true, PID: b.Process.Pid}); return err }},
		{"Unregister", func() error { return m.Unregister(context.Background(), root, Selector{Name: "a"}) }},
		{"leader exit", func() error {
			b.Process.Kill()
			b.Wait()
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				if _, err := m.Get(root, Selector{Name: "b"}); err != nil {
					return nil
				}
				time.Sleep(5 * time.Millisecond)
			}
			t.Error("b was not finalized after its leader exited")
			return nil
		}},
	}
	for _, s := range steps {
		done := make(chan error, 1)
		go func() { done <- s.do() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s while a registration waits on the unit back end: %v", s.what, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s waited on the blocked unit back end", s.what)
		}
	}
	select {
	case err := <-regDone:
		t.Fatalf("the stuck registration returned before the back end answered: %v", err)
	default:
	}
	close(units.release)
	if err := <-regDone; err != nil {
		t.Errorf("the stuck registration failed once the back end answered: %v", err)
	}
}
