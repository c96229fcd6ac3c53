package machine1

import (
	"errors"

	"github.com/machined-go/machined/dbusshim/busconn"

	"github.com/machined-go/machined/service"
)

// eventBuffer is how far the forwarder may fall behind the registry before
// the core drops its subscription (it then resubscribes and resynchronizes).
const eventBuffer = 4096

// forwardEvents turns the core's registry events, from either transport, into
// MachineNew/MachineRemoved on the Manager object, in order. It takes the
// watch's events straight from the core, as many as have queued, and writes
// their signals together. When the core drops the watch because we fell
// behind, it watches again and emits what changed meanwhile, by comparing the
// new snapshot with the names it knows.
func (s *Server) forwardEvents(conn *busconn.Conn, mgr *service.Manager, snap []service.MachineInfo, w *service.Watch) {
	known := newAnnounced(len(snap))
	for _, mi := range snap {
		known.add(mi.Name)
	}
	var sigs []busconn.Signal
	for {
		select {
		case <-s.stop:
			w.Cancel()
			return
		case <-conn.Context().Done():
			w.Cancel()
			return
		case <-w.Ready():
		}
		evs, end := w.Take()
		sigs = sigs[:0]
		for _, ev := range evs {
			switch ev.Kind {
			case service.MachineNew:
				known.add(ev.Name)
				sigs = append(sigs, machineSignal(signalMachineNew, ev.Name))
			case service.MachineRemoved:
				known.remove(ev.Name)
				sigs = append(sigs, machineSignal(signalMachineRemoved, ev.Name))
			}
		}
		s.emitAll(conn, sigs)
		sigs = reuseSignals(sigs)
		if end == nil {
			continue
		}
		if !errors.Is(end, service.ErrBacklogExceeded) {
			// The core is shutting down: nothing more will come.
			select {
			case <-s.stop:
			case <-conn.Context().Done():
			}
			return
		}
		s.log.Warn("D-Bus signal forwarder fell behind; resynchronizing")
		snap, w = mgr.Watch(eventBuffer)
		now := newAnnounced(len(snap))
		sigs = sigs[:0]
		for _, mi := range snap {
			now.add(mi.Name)
			if !known.has(mi.Name) {
				sigs = append(sigs, machineSignal(signalMachineNew, mi.Name))
			}
		}
		for name := range known.names {
			if !now.has(name) {
				sigs = append(sigs, machineSignal(signalMachineRemoved, name))
			}
		}
		s.emitAll(conn, sigs)
		sigs = reuseSignals(sigs)
		known = now
	}
}

// signalsKept is the most signals the forwarder keeps room for between
// batches: a batch after a long lag may hold thousands, and their array would
// otherwise stay at that size for the daemon's life.
const signalsKept = 256

// reuseSignals empties a batch that has been sent, dropping the names it
// held, and returns it for the next batch, or nil when it grew past
// signalsKept.
func reuseSignals(sigs []busconn.Signal) []busconn.Signal {
	if cap(sigs) > signalsKept {
		return nil
	}
	clear(sigs)
	return sigs[:0]
}

// The Manager's signals about one machine.
const (
	signalMachineNew     = managerIface + ".MachineNew"
	signalMachineRemoved = managerIface + ".MachineRemoved"
)

// machineSignal is the Manager's signal (one of the above) about the machine name.
func machineSignal(signal, name string) busconn.Signal {
	return busconn.Signal{Path: managerPath, Name: signal, Body: []any{name, MachinePath(name)}}
}

func (s *Server) emitAll(conn *busconn.Conn, sigs []busconn.Signal) {
	if len(sigs) == 0 {
		return
	}
	if err := conn.EmitAll(sigs); err != nil {
		s.log.Debug("emit signals", "count", len(sigs), "err", err)
	}
}
