package tests

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/machined-go/machined/client"
)

// SIGKILL in the middle of a registration storm: after the restart nothing is
// torn, every acknowledged registration whose leader lives is back, and nothing
// whose leader died is.
func TestSIGKILLDuringStorm(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "--units", "none")
	const workers, perWorker = 8, 6
	leaders := make([][]*leader, workers)
	for w := range leaders {
		for i := 0; i < perWorker; i++ {
			leaders[w] = append(leaders[w], spawnLeader(t))
		}
	}
	var mu sync.Mutex
	acked := map[string]int{} // name -> leader pid, registered and not unregistered
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c, err := client.Dial(context.Background(), d.sock())
			if err != nil {
				return
			}
			defer c.Close()
			for round := 0; ; round++ {
				for i, l := range leaders[w] {
					select {
					case <-stop:
						return
					default:
					}
					name := fmt.Sprintf("s%d-%d", w, i)
					if round%2 == 0 {
						if c.Register(context.Background(), client.RegisterRequest{Name: name, Class: client.ClassContainer, LeaderPID: l.pid}) != nil {
							return
						}
						mu.Lock()
						acked[name] = l.pid
						mu.Unlock()
					} else {
						// Forget it before asking: an unacknowledged unregister may or may not have happened.
						mu.Lock()
						delete(acked, name)
						mu.Unlock()
						if c.Unregister(context.Background(), client.ByName(name)) != nil {
							return
						}
					}
				}
			}
		}(w)
	}
	time.Sleep(300 * time.Millisecond) // let the storm build up; not an assertion
	d.stop(syscall.SIGKILL)
	close(stop)
	wg.Wait()
	// Kill a few leaders while the daemon is down.
	dead := map[int]bool{}
	for w := 0; w < workers; w++ {
		leaders[w][0].kill()
		dead[leaders[w][0].pid] = true
	}
	d.start()

	stateFiles(t, d) // every file whole and parsable, no temp file left
	mu.Lock()
	defer mu.Unlock()
	if len(acked) == 0 {
		t.Log("no registration was acknowledged before the kill")
	}
	for name, pid := range acked {
		_, err := getOne(t, d, name)
		if dead[pid] {
			if err == nil {
				t.Errorf("%s came back with a dead leader", name)
			}
		} else if err != nil {
			t.Errorf("acknowledged machine %s lost: %v", name, err)
		}
	}
	// Everything listed has a live leader.
	for name, pid := range listAll(t, d) {
		if dead[pid] {
			t.Errorf("%s listed with dead leader %d", name, pid)
		}
	}
}
