package tests

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// ListImages of 1,000 directory images, each with an os-release and a
// hostname, on the test's file system (not a tmpfs: images live on disks).
// daemon-µs/op is the daemon's CPU time per call, from its schedstat, which
// leaves out the client's decoding of the reply.
func BenchmarkDBusListImages1000(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	imgs := b.TempDir()
	for i := range 1000 {
		root := filepath.Join(imgs, "bench-img-"+strconv.Itoa(i))
		for _, f := range []struct{ path, text string }{
			{"usr/lib/os-release", "ID=bench\n"},
			{"etc/hostname", "bench\n"},
		} {
			if err := os.MkdirAll(filepath.Join(root, filepath.Dir(f.path)), 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, f.path), []byte(f.text), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	bus := startPrivateBus(b)
	d := &daemon{dir: mustTempDir(b)}
	d.args = []string{"--runtime-dir", d.dir, "--bus", bus.addr, "--units", "none", "--log-level", "warning",
		"--image-search-path", imgs, "--image-pool", imgs}
	startBench(b, d)
	b.Cleanup(func() { d.cmd.Process.Signal(syscall.SIGTERM); d.cmd.Wait() })
	c, err := dbus.Connect(bus.addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	var list [][]any
	for i := 0; benchCall(b, c, "ListImages").Store(&list) != nil; i++ {
		if i > 1000 {
			b.Fatal("daemon did not take its bus name")
		}
		sleepMs(10)
	}
	cpu0 := schedstatNS(b, d.pid())
	b.ResetTimer()
	for b.Loop() {
		if err := benchCall(b, c, "ListImages").Store(&list); err != nil {
			b.Fatal(err)
		}
		if len(list) != 1001 { // and .host
			b.Fatalf("listed %d", len(list))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(schedstatNS(b, d.pid())-cpu0)/1e3/float64(b.N), "daemon-µs/op")
}

// schedstatNS is the CPU time of every thread of pid so far.
func schedstatNS(b *testing.B, pid int) int64 {
	files, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/schedstat")
	var sum int64
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.Fields(string(data))[0], 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		sum += v
	}
	return sum
}
