package service

import (
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
)

// BenchmarkRegistryMemory registers machines, each led by a process of its own
// in a user namespace of its own (as nspawn's containers are), and reports the
// live heap each one holds: record, indexes, pinned leader, id maps. Run it
// with -benchtime=1x and -memprofile (with -memprofilerate=1) to see which
// allocation holds what.
func BenchmarkRegistryMemory(b *testing.B) {
	const n = 1000
	leaders := make([]int, n)
	for i := range leaders {
		cmd := exec.Command("sleep", "1000")
		shift := 65536 * (10 + i)
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: shift, Size: 65536}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: shift, Size: 65536}},
		}
		if err := cmd.Start(); err != nil {
			b.Skipf("cannot start a leader in a user namespace: %v", err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		leaders[i] = cmd.Process.Pid
	}
	ctx := context.Background()
	var perMachine float64
	for b.Loop() {
		m, err := New(Config{StateDir: filepath.Join(b.TempDir(), "machines"), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		before := liveHeap()
		for i, pid := range leaders {
			req := RegisterRequest{Name: "bench-" + strconv.Itoa(i), Class: "container", Leader: pid}
			if _, err := m.Register(ctx, root, req); err != nil {
				b.Fatal(err)
			}
		}
		perMachine = float64(liveHeap()-before) / n
		runtime.KeepAlive(m)
		m.Close()
	}
	b.ReportMetric(perMachine, "B/machine")
}

func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
