package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/machined-go/machined/service"
	"github.com/machined-go/machined/varlink"
)

// logStatsOnSIGUSR1 writes one line of runtime figures each time the daemon
// gets SIGUSR1: what an operator (or the chaos suite) needs to see that
// hostile clients left nothing behind.
func logStatsOnSIGUSR1(ctx context.Context, log *slog.Logger, mgr *service.Manager, servers map[string]*varlink.Server) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
			}
			attrs := []any{"goroutines", runtime.NumGoroutine(), "fds", openFDs(), "machines", mgr.Count()}
			for name, s := range servers {
				if s != nil {
					n, _ := s.Stats()
					attrs = append(attrs, "connections_"+name, n, "pending_input_kib_"+name, s.PendingInput()>>10)
				}
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			attrs = append(attrs, "heap_inuse_kib", ms.HeapInuse>>10)
			log.Info("runtime stats", attrs...)
		}
	}()
}

func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents) - 1 // the directory being read
}
