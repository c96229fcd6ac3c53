package tests

import (
	"context"
	"os"
	"syscall"
	"testing"

	"github.com/godbus/dbus/v5"
)

// D-Bus benchmarks: the daemon on a private dbus-daemon, a godbus client on
// one connection. Every call crosses the bus twice, as it does for real
// clients; the figures include dbus-daemon's share.

func benchBusDaemon(b *testing.B) (*daemon, *dbus.Conn) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	bus := startPrivateBus(b)
	d := &daemon{dir: mustTempDir(b)}
	d.args = []string{"--runtime-dir", d.dir, "--bus", bus.addr, "--units", "none", "--log-level", "warning"}
	startBench(b, d)
	b.Cleanup(func() { d.cmd.Process.Signal(syscall.SIGTERM); d.cmd.Wait() })
	c, err := dbus.Connect(bus.addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	for i := 0; ; i++ {
		var has bool
		c.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, m1Dest).Store(&has)
		if has {
			break
		}
		if i > 1000 {
			b.Fatal("daemon did not take its bus name")
		}
		sleepMs(10)
	}
	return d, c
}

func benchCall(b *testing.B, c *dbus.Conn, method string, args ...any) *dbus.Call {
	return c.Object(m1Dest, m1Path).CallWithContext(context.Background(), m1Manager+"."+method, 0, args...)
}

// ListMachines with 500 machines (plus .host).
func BenchmarkDBusListMachines500(b *testing.B) {
	d, c := benchBusDaemon(b)
	registerFarm(b, d, startFarm(b, 500))
	var list []struct {
		Name, Class, Service string
		Path                 dbus.ObjectPath
	}
	b.ResetTimer()
	for b.Loop() {
		if err := benchCall(b, c, "ListMachines").Store(&list); err != nil {
			b.Fatal(err)
		}
		if len(list) != 501 {
			b.Fatalf("listed %d", len(list))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(rssKiB(d.pid()))/1024, "daemon-RSS-MiB")
}

// RegisterMachine + UnregisterMachine pairs on one connection.
func BenchmarkDBusRegisterUnregister(b *testing.B) {
	_, c := benchBusDaemon(b)
	f := startFarm(b, 1)
	leader := uint32(f.pids[0])
	b.ResetTimer()
	for b.Loop() {
		if err := benchCall(b, c, "RegisterMachine", "bench", []byte{}, "bench", "container", leader, "").Store(new(dbus.ObjectPath)); err != nil {
			b.Fatal(err)
		}
		if err := benchCall(b, c, "UnregisterMachine", "bench").Store(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}
