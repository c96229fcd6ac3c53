package cgroup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/machined-go/machined/service"
	"github.com/machined-go/machined/service/proc"
	"golang.org/x/sys/unix"
)

// delegatedFiles are the files a delegated cgroup's owner must be able to write
// to manage its own subtree (cgroup v2 delegation model).
var delegatedFiles = []string{"cgroup.procs", "cgroup.threads", "cgroup.subtree_control"}

// CreateScope implements service.Units: it creates <root>/<slice path>/<unit> and
// moves the leader into it. A unit directory that already exists is an error
// wrapping syscall.EEXIST, unless it is empty (left behind by a crash), in which
// case it is replaced. On failure everything created here is removed again.
//
// Description and req.Properties are ignored. With a non-zero UID the unit directory and its delegation files are chowned to that
// UID, which is what Delegate=true plus User= gives under systemd.
func (b *Backend) CreateScope(ctx context.Context, req service.ScopeRequest) error {
	if !proc.ValidCgroupUnitName(req.Unit) || !strings.HasSuffix(req.Unit, ".scope") {
		return fmt.Errorf("invalid scope name %q: %w", req.Unit, syscall.EINVAL)
	}
	if req.LeaderPID <= 0 {
		return fmt.Errorf("invalid leader pid %d: %w", req.LeaderPID, syscall.EINVAL)
	}
	slice := req.Slice
	if slice == "" {
		slice = "machine.slice"
	}
	if slice == "-.slice" {
		// The root cgroup is no place to delegate: the core refuses it too.
		return fmt.Errorf("scope %s may not be placed in the root slice: %w", req.Unit, syscall.EINVAL)
	}
	sliceRel, err := slicePath(slice)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	b.fsMu.Lock()
	defer b.fsMu.Unlock()

	// Parents first; remember which ones we made so a failure can undo them.
	var made []string
	undo := func() {
		for i := len(made) - 1; i >= 0; i-- {
			if err := unix.Rmdir(made[i]); err != nil && !errors.Is(err, syscall.ENOENT) {
				b.log.Debug("remove cgroup after failed scope creation", "dir", made[i], "err", err)
			}
		}
	}
	parent := b.root
	if sliceRel != "" {
		for _, p := range strings.Split(sliceRel, "/") {
			parent = filepath.Join(parent, p)
			if err := unix.Mkdir(parent, 0o755); err == nil {
				made = append(made, parent)
			} else if !errors.Is(err, syscall.EEXIST) {
				undo()
				return fmt.Errorf("create slice cgroup %s: %w", parent, err)
			}
		}
	}

	dir := filepath.Join(parent, escapeCgroupName(req.Unit))
	if err := b.mkdirUnit(dir, req.Unit); err != nil {
		undo()
		return err
	}
	made = append(made, dir)

	if err := b.moveLeader(dir, req); err != nil {
		undo()
		return err
	}
	if req.UID != 0 {
		if err := delegate(dir, int(req.UID)); err != nil {
			// The scope works without it; only the payload's own cgroup
			// management is affected, so log rather than fail.
			b.log.Warn("delegate scope cgroup", "unit", req.Unit, "uid", req.UID, "err", err)
		}
	}

	for _, d := range made[:len(made)-1] {
		b.slices[d] = true
	}
	b.mu.Lock()
	b.owned[req.Unit] = &ownedUnit{dir: dir}
	b.mu.Unlock()
	b.log.Debug("created scope", "unit", req.Unit, "cgroup", b.relPath(dir), "leader", req.LeaderPID)
	return nil
}

// mkdirUnit creates the unit directory. An existing unpopulated one (no
// process in it or below; empty child cgroups, such as a daemon stopped halfway
// through removing a scope leaves, do not count) is stale and is replaced;
// anything else is EEXIST.
// b.fsMu must be held.
func (b *Backend) mkdirUnit(dir, unit string) error {
	err := unix.Mkdir(dir, 0o755)
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("create scope cgroup %s: %w", dir, err)
	}
	if pop, perr := populated(dir); perr != nil || pop {
		return fmt.Errorf("unit %s already exists: %w", unit, syscall.EEXIST)
	}
	// Unlink it from our table first, so nobody mistakes the new directory for
	// the old one (a pending Release of the old unit stops retrying).
	b.mu.Lock()
	delete(b.owned, unit)
	b.mu.Unlock()
	if err := removeTree(dir); err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("unit %s already exists (stale cgroup not removable: %v): %w", unit, err, syscall.EEXIST)
	}
	b.log.Info("replaced stale empty scope cgroup", "unit", unit, "cgroup", b.relPath(dir))
	if err := unix.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("create scope cgroup %s: %w", dir, err)
	}
	return nil
}

// moveLeader writes the leader's PID to cgroup.procs. When a pidfd is known it
// first checks the process is still alive, so a recycled PID is not moved.
func (b *Backend) moveLeader(dir string, req service.ScopeRequest) error {
	if req.LeaderPIDFD >= 0 {
		if err := unix.PidfdSendSignal(req.LeaderPIDFD, 0, nil, 0); err != nil {
			return fmt.Errorf("leader %d: %w", req.LeaderPID, err)
		}
	}
	if err := writeFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(req.LeaderPID)); err != nil {
		return fmt.Errorf("move leader %d into %s: %w", req.LeaderPID, b.relPath(dir), err)
	}
	return nil
}

// delegate hands the cgroup directory and the files needed to manage the
// subtree to uid; the group is left alone.
func delegate(dir string, uid int) error {
	if err := os.Chown(dir, uid, -1); err != nil {
		return err
	}
	for _, name := range delegatedFiles {
		if err := os.Chown(filepath.Join(dir, name), uid, -1); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}
