package service

import (
	"context"

	"errors"
	"fmt"
	"github.com/machined-go/machined/service/proc"
	"log/slog"
	"syscall"
	"time"
)

// watchLeader finalizes the machine as soon as its leader exits, with or
// without systemd. m.mu must be held.
func (m *Manager) watchLeader(mc *machine) {
	tok, err := m.exits.watch(mc.leader.FD(), mc)
	if err != nil {
		m.log.Error("cannot watch leader; its exit will be noticed only on restart", "machine", mc.name, "err", err)
	}
	mc.exitWatch = tok
}

// leaderExited finalizes mc, whose leader exited, unless the watch tok is no
// longer the machine's.
func (m *Manager) leaderExited(mc *machine, tok exitToken) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur := m.machines.get(mc.name); cur != mc || mc.exitWatch != tok || mc.finalized || m.closed {
		return // replaced, watched again, gone, or shutting down (restore re-checks it)
	}
	if mc.allocated {
		// The rest of a unit we created goes with its leader, as upstream's GC
		// stops the unit before it finalizes.
		m.stopUnitAsync(mc.unit)
	}
	reason := ReasonLeaderExited
	if mc.closing {
		reason = ReasonTerminated
	}
	m.finalizeLocked(mc, reason)
}

// finalizeLocked removes a machine: indexes, state file, unit link, announcement.
// Nothing is stopped or signalled. m.mu must be held.
func (m *Manager) finalizeLocked(mc *machine, why Reason) {
	if mc.finalized {
		return
	}
	mc.finalized = true
	name := mc.name
	m.machines.remove(mc)
	m.byLeader.remove(mc)
	// The machine indexed by its unit is the one whose record saved the unit
	// link (publish refuses a second machine for a unit): its link goes
	// without being read first.
	ownLink := m.byUnit.remove(mc)
	m.ids.remove(name)
	m.releaseQuotaLocked(mc.uid)
	unit := ""
	if mc.ownsUnit() {
		unit = mc.unit
	}
	var err error
	if ownLink && unit != "" {
		err = m.state.RemoveOwn(name, unit)
	} else {
		err = m.state.Remove(name, unit)
	}
	if err != nil {
		m.log.Warn("remove state file", "machine", name, "err", err)
	}
	if mc.allocated && m.cfg.Units != nil {
		m.cfg.Units.Release(mc.unit)
	}
	m.ops.Cancel(mc, ErrNoSuchMachine)
	if mc.exitWatch != 0 {
		m.exits.forget(mc.exitWatch)
	}
	mc.leader.Close()
	m.emitLocked(MachineRemoved, mc, why)
	if m.cfg.Changed != nil {
		m.cfg.Changed()
	}
	m.logEvent("Machine "+name+" terminated.", slog.String("NAME", name), slog.String("reason", string(why)), slog.String("MESSAGE_ID", "58432bd3bace477cb514b56381b8a758"))
}

func (m *Manager) stopUnitAsync(unit string) {
	if m.cfg.Units == nil || unit == "" {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.cfg.Units.Stop(ctx, unit); err != nil {
			m.log.Warn("stop unit", "unit", unit, "err", err)
		}
	}()
}

// selectForAction resolves the machine and checks the caller may act on it.
func (m *Manager) selectForAction(ctx context.Context, c Caller, sel Selector, verb string) (*machine, error) {
	sel, release := m.resolvePID(c, sel)
	defer release()
	m.mu.Lock()
	mc, err := m.selectLocked(sel)
	var owner uint32
	if err == nil {
		owner = mc.uid
	}
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	ownerPtr := &owner
	if mc.isHost() {
		ownerPtr = nil // nobody owns the host
	}
	details := func() map[string]string { return map[string]string{"name": mc.name, "verb": verb} }
	if err := m.authorize(ctx, c, ActionManageMachines, details, ownerPtr); err != nil {
		return nil, err
	}
	return mc, nil
}

// Unregister drops a machine's registration without stopping anything. .host
// cannot be unregistered; like upstream that is a successful no-op.
func (m *Manager) Unregister(ctx context.Context, c Caller, sel Selector) error {
	mc, err := m.selectForAction(ctx, c, sel, "unregister")
	if err != nil {
		return err
	}
	if mc.isHost() {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.machines.get(mc.name) != mc {
		return fmt.Errorf("no machine '%s' known: %w", mc.name, ErrNoSuchMachine)
	}
	m.finalizeLocked(mc, ReasonUnregistered)
	return nil
}

// Terminate stops a machine: its unit when it owns one, else SIGTERM to its
// leader and SIGKILL after StopTimeout. The machine goes away when its leader
// exits. Unlike upstream we never signal the supervisor here: it is merely the
// process that registered the machine (libvirtd, a manager, a script), and
// terminating a machine must not take that down.
func (m *Manager) Terminate(ctx context.Context, c Caller, sel Selector) error {
	mc, err := m.selectForAction(ctx, c, sel, "terminate")
	if err != nil {
		return err
	}
	if mc.isHost() {
		return errNotSupportedf("the host cannot be terminated")
	}
	m.mu.Lock()
	if m.machines.get(mc.name) != mc {
		m.mu.Unlock()
		return fmt.Errorf("no machine '%s' known: %w", mc.name, ErrNoSuchMachine)
	}
	if !mc.closing {
		mc.closing = true
		m.emitLocked(MachineStateChanged, mc, ReasonNone)
	}
	info, leader := mc.snapshot(), mc.leader
	m.mu.Unlock()

	if info.OwnsUnit() && m.cfg.Units != nil {
		return m.cfg.Units.Stop(ctx, info.Unit)
	}
	if err := leader.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("terminate machine %s: %w", info.Name, err)
	}
	exited := leader.Exited()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTimer(m.cfg.StopTimeout)
		defer t.Stop()
		select {
		case <-exited:
		case <-m.stop:
		case <-t.C:
			m.mu.Lock()
			alive := !mc.finalized
			m.mu.Unlock()
			if alive {
				m.log.Info("machine did not stop in time, killing", "machine", info.Name)
				leader.Signal(syscall.SIGKILL)
			}
		}
	}()
	return nil
}

// Kill signals the machine's processes. whom is "leader", "supervisor" or "all"
// ("" means all). For a machine in no unit, "all" is its leader: the supervisor
// is signalled only when asked for by name (see Terminate).
func (m *Manager) Kill(ctx context.Context, c Caller, sel Selector, whom string, sig int) error {
	switch whom {
	case "", "all", "leader", "supervisor":
	default:
		return invalidArg("whom", "invalid kill parameter %q", whom)
	}
	if !ValidSignal(sig) {
		return invalidArg("signal", "invalid signal %d", sig)
	}
	mc, err := m.selectForAction(ctx, c, sel, "kill")
	if err != nil {
		return err
	}
	if mc.isHost() {
		return errNotSupportedf("the host cannot be killed")
	}
	m.mu.Lock()
	if mc.finalized {
		m.mu.Unlock()
		return fmt.Errorf("no machine '%s' known: %w", mc.name, ErrNoSuchMachine)
	}
	info, leader := mc.snapshot(), mc.leader
	m.mu.Unlock()

	s := syscall.Signal(sig)
	switch whom {
	case "leader":
		return signalErr(leader.Signal(s))
	case "supervisor":
		sup, err := pin(info.Supervisor)
		if err != nil {
			return fmt.Errorf("supervisor of machine %s: %w", info.Name, ErrNoSuchProcess)
		}
		defer sup.Close()
		return signalErr(sup.Signal(s))
	}
	if info.Unit != "" && m.cfg.Units != nil {
		return m.cfg.Units.Kill(ctx, info.Unit, info.Subgroup, s)
	}
	return signalErr(leader.Signal(s))
}

// pin re-opens a recorded process, refusing one whose PID now names another. A
// record without a pidfd id cannot prove the PID still names the same process
// (it may have been recycled since, by anyone), so it is refused too.
func pin(p ProcessID) (*proc.PidRef, error) {
	if p.PID <= 0 || p.PIDFDID == 0 {
		return nil, ErrNoSuchProcess
	}
	ref, err := proc.Open(p.PID)
	if err != nil {
		return nil, err
	}
	if ref.ID != p.PIDFDID {
		ref.Close()
		return nil, ErrNoSuchProcess
	}
	return ref, nil
}

func signalErr(err error) error {
	if errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("process is gone: %w", ErrNoSuchProcess)
	}
	return err
}
