package cgroup

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// pollInterval is how often a stopping unit's cgroup.events is re-read.
	pollInterval = 50 * time.Millisecond
	// killWait is how long a unit may stay populated after SIGKILL before we
	// stop watching it (processes in uninterruptible sleep, say).
	killWait = 5 * time.Second
	// releaseAttempts × releaseDelay is how long Release keeps trying to remove
	// a directory whose last process is still exiting.
	releaseAttempts = 20
	releaseDelay    = 100 * time.Millisecond
)

// stopState tracks a Stop in progress. release is set when Release was called
// meanwhile; the stopping goroutine removes the directory once it is done.
type stopState struct {
	release *ownedUnit
}

// Stop implements service.Units: SIGTERM (followed by SIGCONT) to every process
// of the unit, then, in the background, SIGKILL if the cgroup is still populated
// after StopTimeout. A unit without a cgroup is already stopped. A second Stop
// while one is in progress does nothing.
func (b *Backend) Stop(ctx context.Context, unit string) error {
	dir, err := b.unitDir(unit)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	b.mu.Lock()
	if b.stopping[unit] != nil {
		b.mu.Unlock()
		return nil
	}
	st := &stopState{}
	b.stopping[unit] = st
	b.mu.Unlock()

	if err := b.signalTree(ctx, dir, syscall.SIGTERM, true); err != nil {
		// The SIGKILL escalation below still runs, so the stop is initiated.
		b.log.Warn("send SIGTERM to unit", "unit", unit, "err", err)
	}
	b.wg.Add(1)
	go b.finishStop(unit, dir, st)
	return nil
}

// finishStop waits for the unit's cgroup to empty, escalating to SIGKILL after
// the grace period, then performs a Release that arrived meanwhile.
func (b *Backend) finishStop(unit, dir string, st *stopState) {
	defer b.wg.Done()
	deadline := time.Now().Add(b.stopTimeout())
	killed := false
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		pop, err := populated(dir)
		if err != nil || !pop {
			break
		}
		if time.Now().After(deadline) {
			if killed {
				b.log.Warn("unit still has processes after SIGKILL", "unit", unit)
				break
			}
			b.log.Info("unit did not stop in time, sending SIGKILL", "unit", unit, "timeout", b.stopTimeout())
			if err := b.signalTree(context.Background(), dir, syscall.SIGKILL, false); err != nil {
				b.log.Warn("send SIGKILL to unit", "unit", unit, "err", err)
			}
			killed = true
			deadline = time.Now().Add(killWait)
		}
		<-tick.C
	}
	b.mu.Lock()
	delete(b.stopping, unit)
	u := st.release
	b.mu.Unlock()
	if u != nil {
		b.removeOwned(unit, u)
	}
}

// Release implements service.Units: it removes the cgroup directory of a unit
// this backend created, in the background, retrying for a short while when the
// last processes are still exiting. If a Stop is in progress the removal waits
// for it. Units the backend did not create are left alone.
func (b *Backend) Release(unit string) {
	b.mu.Lock()
	u := b.owned[unit]
	if u == nil {
		b.mu.Unlock()
		return
	}
	if st := b.stopping[unit]; st != nil {
		st.release = u
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.removeOwned(unit, u)
	}()
}

// removeOwned removes u's directory tree (empty child cgroups first) and forgets
// the unit. It gives up after releaseAttempts when processes remain.
func (b *Backend) removeOwned(unit string, u *ownedUnit) {
	var err error
	for i := 0; i < releaseAttempts; i++ {
		if i > 0 {
			time.Sleep(releaseDelay)
		}
		var done bool
		done, err = b.tryRemove(unit, u)
		if done {
			return
		}
		if !errors.Is(err, syscall.EBUSY) {
			break
		}
	}
	b.log.Warn("cannot remove scope cgroup, leaving it", "unit", unit, "cgroup", b.relPath(u.dir), "err", err)
	b.mu.Lock()
	if b.owned[unit] == u {
		delete(b.owned, unit)
	}
	b.mu.Unlock()
}

// tryRemove makes one removal attempt. done means there is nothing more to do:
// removed, already gone, or the name now belongs to a newer scope.
func (b *Backend) tryRemove(unit string, u *ownedUnit) (done bool, err error) {
	b.fsMu.Lock()
	defer b.fsMu.Unlock()
	b.mu.Lock()
	current := b.owned[unit] == u
	b.mu.Unlock()
	if !current {
		return true, nil
	}
	err = removeTree(u.dir)
	if err != nil && !errors.Is(err, syscall.ENOENT) {
		return false, err
	}
	b.mu.Lock()
	if b.owned[unit] == u {
		delete(b.owned, unit)
	}
	b.mu.Unlock()
	b.log.Debug("removed scope cgroup", "unit", unit, "cgroup", b.relPath(u.dir))
	b.removeEmptySlices(filepath.Dir(u.dir))
	return true, nil
}

// removeEmptySlices removes dir and its parents as long as this backend
// created them and they hold no other cgroup (rmdir fails on a slice that still
// has a scope, which ends the walk). b.fsMu must be held.
func (b *Backend) removeEmptySlices(dir string) {
	for b.slices[dir] {
		if err := unix.Rmdir(dir); err != nil && !errors.Is(err, syscall.ENOENT) {
			return
		}
		delete(b.slices, dir)
		b.log.Debug("removed slice cgroup", "cgroup", b.relPath(dir))
		dir = filepath.Dir(dir)
	}
}

// removeTree removes dir and the cgroups below it, deepest first. Cgroup
// directories only ever contain kernel files, so rmdir works once they are empty
// of processes and children; the error is the one for dir itself.
func removeTree(dir string) error {
	var dirs []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	for i := len(dirs) - 1; i > 0; i-- {
		unix.Rmdir(dirs[i]) // a busy child makes the final rmdir fail with EBUSY
	}
	err := unix.Rmdir(dir)
	if err != nil {
		return &os.PathError{Op: "rmdir", Path: dir, Err: err}
	}
	return nil
}
