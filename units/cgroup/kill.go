package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/machined-go/machined/service/proc"
	"golang.org/x/sys/unix"
)

// maxKillPasses bounds the re-scan loop of signalTree: a subtree that keeps
// spawning new processes faster than they are signalled cannot keep us forever.
const maxKillPasses = 64

// Kill implements service.Units: sig goes to every process of the unit's cgroup
// tree, or of the subtree at subgroup below it. A unit without a cgroup is an
// error wrapping service.ErrNoSuchProcess; an empty cgroup is not an error.
func (b *Backend) Kill(ctx context.Context, unit, subgroup string, sig syscall.Signal) error {
	dir, err := b.unitDir(unit)
	if errors.Is(err, fs.ErrNotExist) {
		return errNoUnit(unit)
	}
	if err != nil {
		return err
	}
	sub, err := cleanSubgroup(subgroup)
	if err != nil {
		return err
	}
	if sub != "" {
		dir = filepath.Join(dir, sub)
		if !isDir(dir) {
			return fmt.Errorf("subgroup %s of unit %s has no cgroup: %w", sub, unit, fs.ErrNotExist)
		}
	}
	return b.signalTree(ctx, dir, sig, false)
}

// signalTree sends sig to every process in dir and its descendants.
//
// SIGKILL goes through cgroup.kill when the kernel has it (5.14+): it is atomic
// and also catches processes forked while we look. Otherwise, and for every other
// signal, cgroup.procs of the whole tree is read and each new PID signalled, over
// and over until a pass finds nobody new, so children forked during a pass are not
// missed. With cont, each process also gets SIGCONT, so stopped processes can act
// on the signal.
func (b *Backend) signalTree(ctx context.Context, dir string, sig syscall.Signal, cont bool) error {
	if sig == syscall.SIGKILL && !b.noCgroupKill {
		err := writeFile(filepath.Join(dir, "cgroup.kill"), "1")
		if err == nil {
			return nil
		}
		if errors.Is(err, fs.ErrNotExist) && !isDir(dir) {
			return nil // the cgroup went away; nothing left to kill
		}
		b.log.Debug("cgroup.kill unusable, signalling processes one by one", "cgroup", b.relPath(dir), "err", err)
	}
	rel := b.relPath(dir)
	self := os.Getpid()
	seen := make(map[int]bool)
	var firstErr error
	for pass := 0; pass < maxKillPasses; pass++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		fresh := 0
		for _, pid := range treeProcs(dir) {
			if seen[pid] || pid == self {
				continue
			}
			seen[pid] = true
			fresh++
			err := signalInCgroup(pid, rel, sig)
			if err == nil && cont && sig != syscall.SIGKILL && sig != syscall.SIGCONT {
				err = signalInCgroup(pid, rel, syscall.SIGCONT)
			}
			if err != nil && !errors.Is(err, syscall.ESRCH) && firstErr == nil {
				firstErr = fmt.Errorf("signal %d to process %d in %s: %w", sig, pid, rel, err)
			}
		}
		if fresh == 0 {
			return firstErr
		}
	}
	b.log.Warn("processes keep appearing, giving up on signalling", "cgroup", rel, "signal", int(sig), "signalled", len(seen))
	return firstErr
}

// treeProcs lists the PIDs in dir and all cgroups below it. Unreadable parts
// (a child cgroup removed meanwhile) are skipped.
func treeProcs(dir string) []int {
	var pids []int
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// signalInCgroup signals pid only if, with the process pinned by a pidfd, it
// still lives at or below the cgroup rel. That closes the window in which the
// process could exit and its PID be reused by an unrelated process between
// reading cgroup.procs and sending the signal.
func signalInCgroup(pid int, rel string, sig syscall.Signal) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, syscall.ENOSYS) {
		return unix.Kill(pid, sig) // pre-5.3 kernel: best effort
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	path, err := proc.CgroupPath(pid)
	if err != nil {
		return err
	}
	if !within(path, rel) {
		return syscall.ESRCH // recycled: the process we saw is gone
	}
	return unix.PidfdSendSignal(fd, sig, nil, 0)
}

// within reports whether cgroup path lies at or below dir.
func within(path, dir string) bool {
	if dir == "/" {
		return true
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// writeFile writes to an existing kernel file; unlike os.WriteFile it never tries
// to create or truncate it.
func writeFile(path, data string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
