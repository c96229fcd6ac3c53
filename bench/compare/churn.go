package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// Churn: a daemon that has registered and unregistered many machines and has
// none left should be back near the size it started at. The rows show what a
// long-running host sees after bursts of short-lived machines.

func rowChurnRSS(rounds, n int) string {
	return fmt.Sprintf("after %d rounds of registering %s machines and unregistering them all", rounds, count(n))
}

func rowChurnGrowth(rounds int) string {
	return fmt.Sprintf("growth over the fresh start after those %d rounds", rounds)
}

// churn runs the rounds on a freshly started daemon whose RSS is base KiB.
func (b *bench) churn(d *daemon, baseKiB int) {
	rounds, n := b.cfg.churnRounds, b.cfg.churnMachs
	rowAfter, rowGrowth := rowChurnRSS(rounds, n), rowChurnGrowth(rounds)
	leaders := b.pairPool
	if n > len(leaders) {
		err := fmt.Errorf("-churn-machines %d exceeds -pair-leaders %d", n, len(leaders))
		b.set(gMemory, rowAfter, "MiB", false, d, failed(err))
		b.set(gMemory, rowGrowth, "MiB", false, d, failed(err))
		return
	}
	t := time.Now()
	retries := 0
	for r := range rounds {
		names := make([]string, n)
		pids := make([]int, n)
		for i := range n {
			l := leaders[(b.pairNext.Add(1)-1)%int64(len(leaders))]
			names[i] = machinePrefix + "churn" + strconv.Itoa(i)
			pids[i] = l.pid
		}
		k, err := d.churnRound(names, pids)
		retries += k
		if err != nil {
			err = fmt.Errorf("round %d: %w", r+1, err)
			b.set(gMemory, rowAfter, "MiB", false, d, failed(err))
			b.set(gMemory, rowGrowth, "MiB", false, d, failed(err))
			return
		}
	}
	b.logf("%s: %d rounds of %d registrations and unregistrations in %s", d.key, rounds, n, time.Since(t).Round(time.Millisecond))
	time.Sleep(memSettle)
	kib, err := rssKiB(d.pid())
	if err != nil {
		b.set(gMemory, rowAfter, "MiB", false, d, failed(err))
		return
	}
	after := figure(float64(kib)/1024, nil)
	if retries > 0 {
		after.Note = fmt.Sprintf("%s refused %s Register calls of the churn rounds with MachineExists (its deferred clean-up "+
			"of the leader's previous machine had not run yet); each was retried until it succeeded", d.key, count(retries))
	}
	b.set(gMemory, rowAfter, "MiB", false, d, after)
	b.set(gMemory, rowGrowth, "MiB", false, d, figure(float64(kib-baseKiB)/1024, nil))
}

// churnRound registers every name (leader pids[i]) on 4 connections, then
// unregisters them all; it returns how many registrations had to be retried.
func (d *daemon) churnRound(names []string, pids []int) (int, error) {
	const workers = 4
	retries := make([]int, workers)
	errs := make([]error, workers)
	each := func(f func(v *vconn, c *dbus.Conn, w, i int) error) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, c, closeCtl, err := d.control()
				if err != nil {
					errs[w] = err
					return
				}
				defer closeCtl()
				for i := w; i < len(names); i += workers {
					if err := f(v, c, w, i); err != nil {
						errs[w] = err
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	each(func(v *vconn, c *dbus.Conn, w, i int) error {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := d.registerOn(v, c, names[i], pids[i])
			if err == nil || !exists(err) || time.Now().After(deadline) {
				return err
			}
			retries[w]++
			time.Sleep(time.Millisecond)
		}
	})
	if err := errors.Join(errs...); err != nil {
		return sum(retries), err
	}
	each(func(v *vconn, c *dbus.Conn, w, i int) error { return d.unregister(v, c, names[i]) })
	return sum(retries), errors.Join(errs...)
}

func exists(err error) bool { return strings.Contains(err.Error(), "MachineExists") }

func sum(s []int) int {
	t := 0
	for _, v := range s {
		t += v
	}
	return t
}
