package service

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service/containerfs"
	"github.com/machined-go/machined/service/ops"
)

// CopyRequest is a copy between the host and a container. Source is on the
// side the copy reads (the container for CopyFrom); Destination defaults to
// Source.
type CopyRequest struct {
	Source, Destination string
	// Replace lets files replace existing ones (D-Bus flag CopyReplace,
	// Varlink replace); without it an existing file is EEXIST.
	Replace bool
	// Normalized applies the D-Bus rule to the paths: no "." or ".."
	// components and no "//". Varlink asks only for absolute, valid paths.
	Normalized bool
}

// CopyFrom copies Source inside the container to Destination on the host.
func (m *Manager) CopyFrom(ctx context.Context, c Caller, sel Selector, req CopyRequest) error {
	return m.copy(ctx, c, sel, req, false)
}

// CopyTo copies Source on the host to Destination inside the container.
func (m *Manager) CopyTo(ctx context.Context, c Caller, sel Selector, req CopyRequest) error {
	return m.copy(ctx, c, sel, req, true)
}

// copy runs a copy as an operation of the machine: at most ops.Max at once,
// ended when the caller goes, when the machine goes and on shutdown.
//
// The container side is resolved inside the leader's root and done as the
// machine's owner; the host side as the caller (a privileged caller as we
// are): an unprivileged owner copying out of its own container must not read
// or write on the host what it could not itself. Ownership as upstream: a
// container without a uid shift keeps the source's owners both ways; with a
// shift, copies out belong to root and copies in to the container's root (the
// shift). An unprivileged caller's files on the host stay its own: a
// root-owned file on the host is not something it may make.
func (m *Manager) copy(ctx context.Context, c Caller, sel Selector, req CopyRequest, to bool) error {
	mc, mi, err := m.admitFileOp(ctx, c, sel, OpCopy, req.Source, &req.Destination, req.Normalized)
	if err != nil {
		return err
	}
	err = m.runOperation(ctx, mc, func(ctx context.Context) error {
		// Finalizing cancels the machine's operations: one that is only
		// starting now must see that the machine is gone.
		m.mu.Lock()
		registered := m.machines.get(mi.Name) == mc
		m.mu.Unlock()
		if !registered {
			return fmt.Errorf("no machine '%s' known: %w", mi.Name, ErrNoSuchMachine)
		}
		err := m.runCopy(ctx, c, mi, req, to)
		if ctx.Err() != nil {
			// What ended the operation, not the interrupted call's complaint.
			return context.Cause(ctx)
		}
		return err
	})
	return copyError(mi, err)
}

func (m *Manager) runCopy(ctx context.Context, c Caller, mi MachineInfo, req CopyRequest, to bool) error {
	shift, err := m.UIDShift(mi)
	if err != nil {
		return err
	}
	leader, err := leaderRef(mi)
	if err != nil {
		return err
	}
	defer leader.Close()
	sides, err := openFileOpSides(c, mi, leader)
	if err != nil {
		return err
	}
	defer sides.close()

	containerPath, hostPath := req.Source, req.Destination
	if to {
		containerPath, hostPath = req.Destination, req.Source
	}
	var cdir, hdir int
	var cname, hname string
	if err := sides.inside.Do(func() (err error) {
		cdir, cname, err = containerfs.OpenParentInRoot(sides.root, containerPath)
		return err
	}); err != nil {
		return err
	}
	defer unix.Close(cdir)
	if err := sides.host.Do(func() (err error) {
		hdir, hname, err = containerfs.OpenParentOnHost(hostPath)
		return err
	}); err != nil {
		return err
	}
	defer unix.Close(hdir)

	containerSide := containerfs.Side{Dir: cdir, Name: cname, As: sides.inside}
	hostSide := containerfs.Side{Dir: hdir, Name: hname, As: sides.host}
	opt := containerfs.Options{Replace: req.Replace}
	if to {
		opt.Own = containerfs.Ownership{Chown: true, Override: shift != 0, UID: shift, GID: shift}
		if shift == 0 && !c.privileged() {
			opt.Own.Chown = false
		}
		return m.treeCopier().Copy(ctx, hostSide, containerSide, opt)
	}
	opt.Own = containerfs.Ownership{Chown: c.privileged(), Override: shift != 0}
	return m.treeCopier().Copy(ctx, containerSide, hostSide, opt)
}

func (m *Manager) treeCopier() TreeCopier {
	if m.cfg.TreeCopier != nil {
		return m.cfg.TreeCopier
	}
	return inProcessCopier{}
}

// copyError names why an operation ended: the machine going away or the
// daemon stopping; refusals of the file system are permission errors and
// EOPNOTSUPP is NotSupported, as upstream reports them.
func copyError(mi MachineInfo, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNoSuchMachine):
		return fmt.Errorf("machine %s went away during the operation: %w", mi.Name, ErrNoSuchMachine)
	case errors.Is(err, ops.ErrShutdown):
		return fmt.Errorf("machined is stopping: %w", ErrNotAvailable)
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%v: %w", err, ErrPermissionDenied)
	case errors.Is(err, syscall.EOPNOTSUPP):
		return fmt.Errorf("%v: %w", err, ErrNotSupported)
	}
	return err
}
