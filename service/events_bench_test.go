package service

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// BenchmarkRegisterWithWatchers is a register/unregister pair with watchers
// that read every event (events/s is what each of them received), and with one
// more watcher that never reads: its cost to registrations is the difference to
// the run without it.
func BenchmarkRegisterWithWatchers(b *testing.B) {
	for _, tc := range []struct{ readers, stalled int }{{0, 0}, {1, 0}, {100, 0}, {1, 1}, {0, 1}} {
		b.Run(fmt.Sprintf("readers=%d/stalled=%d", tc.readers, tc.stalled), func(b *testing.B) {
			m, err := New(Config{StateDir: filepath.Join(b.TempDir(), "machines")})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			cmd := exec.Command("sleep", "1000")
			cmd.Start()
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			for range tc.stalled {
				_, w := m.Watch(0)
				defer w.Cancel()
			}
			var wg sync.WaitGroup
			received := make([]int, tc.readers)
			for i := range tc.readers {
				_, w := m.Watch(0)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range w.Ready() {
						evs, end := w.Take()
						received[i] += len(evs)
						if end != nil {
							return
						}
					}
				}()
				defer w.Cancel()
			}
			ctx := context.Background()
			for b.Loop() {
				if _, err := m.Register(ctx, root, RegisterRequest{Name: "bench", Class: "container", Leader: cmd.Process.Pid}); err != nil {
					b.Fatal(err)
				}
				if err := m.Unregister(ctx, root, Selector{Name: "bench"}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			m.Close()
			wg.Wait()
			if tc.readers > 0 {
				b.ReportMetric(float64(received[0])/b.Elapsed().Seconds(), "events/s")
			}
		})
	}
}
