package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// Hostile D-Bus clients — floods of calls that want no reply, wrong
// signatures, megabyte arguments, fd arrays, deep nesting — while a
// well-behaved client lists and registers machines. Every call of the
// well-behaved client is answered correctly, each hostile call that wants a
// reply gets a named error, and the daemon's fds and goroutines return to
// where they were. Needs root (the daemon checks its callers' credentials).
func TestChaosHostileDBus(t *testing.T) {
	d, bus := startBusDaemon(t, "--units", "none", "--log-level", "info")
	leader := spawnLeader(t).pid
	good := dbusConn(t, bus)
	// The daemon caches each caller's credentials (and pidfd) until it
	// leaves the bus: the well-behaved caller's belong to the baseline.
	if err := m1Call(good, "RegisterMachine", "warm-up", []byte{}, "chaos", "container", uint32(leader), "").Err; err != nil {
		t.Fatal(err)
	}
	if err := m1Call(good, "UnregisterMachine", "warm-up").Err; err != nil {
		t.Fatal(err)
	}
	base := d.stats(t)

	goodStop := make(chan struct{})
	goodDone := make(chan struct{})
	var goodCalls int
	var goodErr error
	go func() {
		defer close(goodDone)
		for i := 0; ; i++ {
			select {
			case <-goodStop:
				return
			default:
			}
			name := fmt.Sprintf("good-%d", i)
			var p dbus.ObjectPath
			if err := m1Call(good, "RegisterMachine", name, []byte{}, "chaos", "container", uint32(leader), "").Store(&p); err != nil {
				goodErr = fmt.Errorf("RegisterMachine %s: %w", name, err)
				return
			}
			var list [][]any
			if err := m1Call(good, "ListMachines").Store(&list); err != nil || !listHas(list, name) {
				goodErr = fmt.Errorf("ListMachines after registering %s: %v (%d listed)", name, err, len(list))
				return
			}
			if err := m1Call(good, "UnregisterMachine", name).Err; err != nil {
				goodErr = fmt.Errorf("UnregisterMachine %s: %w", name, err)
				return
			}
			goodCalls += 3
		}
	}()

	var attackers sync.WaitGroup
	var failMu sync.Mutex
	var failures []string
	fail := func(format string, args ...any) {
		failMu.Lock()
		failures = append(failures, fmt.Sprintf(format, args...))
		failMu.Unlock()
	}
	attack := func(f func(c *dbus.Conn)) {
		c := dbusConn(t, bus)
		attackers.Add(1)
		go func() {
			defer attackers.Done()
			defer c.Close()
			f(c)
		}()
	}
	wantErrName := func(what string, err error, names ...string) {
		var de dbus.Error
		if !errors.As(err, &de) {
			fail("%s: %v, want a D-Bus error", what, err)
			return
		}
		for _, n := range names {
			if de.Name == n {
				return
			}
		}
		fail("%s: %s %v, want one of %v", what, de.Name, de.Body, names)
	}

	// Calls that want no reply are not bounded by the bus.
	attack(func(c *dbus.Conn) {
		obj := c.Object(m1Dest, m1Path)
		for i := 0; i < 20000; i++ {
			obj.Go(m1Manager+".RegisterMachine", dbus.FlagNoReplyExpected, nil, fmt.Sprintf("flood-%d", i), []byte{}, "x", "container", uint32(1), "")
		}
		// The connection stays usable: a call that wants its reply gets it.
		wantErrName("GetMachine after the flood", m1Call(c, "GetMachine", "no-such-machine").Err, "org.freedesktop.machine1.NoSuchMachine")
	})
	attack(func(c *dbus.Conn) {
		for _, method := range []string{"RegisterMachine", "RegisterMachineEx", "CreateMachine", "UnregisterMachine", "KillMachine", "GetMachine", "ListMachines", "GetMachineByPID", "OpenMachinePTY"} {
			for _, args := range [][]any{{int64(7)}, {"a", "b", "c", "d", "e", "f", "g", "h", "i"}, {dbus.MakeVariant(1.5)}, {[]string{"x"}, map[string]string{"k": "v"}}} {
				wantErrName(method+" with the wrong signature", m1Call(c, method, args...).Err, "org.freedesktop.DBus.Error.InvalidArgs")
			}
		}
	})
	attack(func(c *dbus.Conn) {
		big := strings.Repeat("x", 1<<20)
		wantErrName("RegisterMachine with a 1 MiB name", m1Call(c, "RegisterMachine", big, []byte{}, "x", "container", uint32(leader), "").Err, "org.freedesktop.DBus.Error.InvalidArgs")
		wantErrName("GetMachine with a 1 MiB name", m1Call(c, "GetMachine", big).Err, "org.freedesktop.DBus.Error.InvalidArgs", "org.freedesktop.machine1.NoSuchMachine")
		props := make([]struct {
			Name  string
			Value dbus.Variant
		}, 5000)
		for i := range props {
			props[i].Name, props[i].Value = "Service", dbus.MakeVariant(big[:100])
		}
		wantErrName("RegisterMachineEx with 5,000 properties", m1Call(c, "RegisterMachineEx", "huge-ex", props).Err, "org.freedesktop.DBus.Error.InvalidArgs")
	})
	attack(func(c *dbus.Conn) {
		r, w, err := os.Pipe()
		if err != nil {
			fail("pipe: %v", err)
			return
		}
		defer r.Close()
		defer w.Close()
		fd := dbus.UnixFD(w.Fd())
		for i := 0; i < 200; i++ {
			props := []struct {
				Name  string
				Value dbus.Variant
			}{{"LeaderPIDFD", dbus.MakeVariant([]dbus.UnixFD{fd, fd, fd})}}
			wantErrName("RegisterMachineEx with an fd array", m1Call(c, "RegisterMachineEx", fmt.Sprintf("fds-%d", i), props).Err, "org.freedesktop.DBus.Error.InvalidArgs")
			wantErrName("GetMachine with an fd", m1Call(c, "GetMachine", fd).Err, "org.freedesktop.DBus.Error.InvalidArgs")
		}
	})
	attack(func(c *dbus.Conn) {
		v := dbus.MakeVariant("deep")
		for i := 0; i < 60; i++ {
			v = dbus.MakeVariant(v)
		}
		props := []struct {
			Name  string
			Value dbus.Variant
		}{{"Service", v}}
		wantErrName("RegisterMachineEx with a variant 60 deep", m1Call(c, "RegisterMachineEx", "deep", props).Err, "org.freedesktop.DBus.Error.InvalidArgs")
	})
	attackers.Wait()
	peak := d.stats(t)
	close(goodStop)
	<-goodDone
	if goodErr != nil {
		t.Errorf("the well-behaved client was not served: %v", goodErr)
	}
	for _, f := range failures {
		t.Error(f)
	}
	var after daemonStats
	eventually(t, fmt.Sprintf("fds and goroutines back to baseline (%d fds, %d goroutines)", base.fds, base.goroutines), func() bool {
		after = d.stats(t)
		return after.fds <= base.fds && after.goroutines <= base.goroutines
	})
	var list [][]any
	if err := m1Call(good, "ListMachines").Store(&list); err != nil || len(list) != 1 {
		t.Errorf("after the attack: %d machines listed (%v), want .host only", len(list), err)
	}
	t.Logf("chaos hostile D-Bus: well-behaved client %d calls; fds %d → %d → %d; goroutines %d → %d → %d",
		goodCalls, base.fds, peak.fds, after.fds, base.goroutines, peak.goroutines, after.goroutines)
}

func listHas(list [][]any, name string) bool {
	for _, e := range list {
		if len(e) > 0 && e[0] == name {
			return true
		}
	}
	return false
}

// m1Call calls a Manager method, waiting at most a minute.
func m1Call(c *dbus.Conn, method string, args ...any) *dbus.Call {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return c.Object(m1Dest, m1Path).CallWithContext(ctx, m1Manager+"."+method, 0, args...)
}
