package machine

import (
	"context"
	_ "embed"
	"errors"

	"github.com/machined-go/machined/service"
	"github.com/machined-go/machined/varlink"
)

//go:embed idl/io.github.machinedgo.MachineEvents.varlink
var eventsIDL string

// eventsIfaceName is ours, not io.systemd's: upstream has no such interface, and
// one it may add later must not collide with this one.
const eventsIfaceName = "io.github.machinedgo.MachineEvents"

// eventsIface serves the event stream: a snapshot of the registry, then its
// changes as the core's Watch delivers them.
type eventsIface struct {
	mgr *service.Manager
}

func (*eventsIface) Name() string        { return eventsIfaceName }
func (*eventsIface) Description() string { return eventsIDL }

func (f *eventsIface) Serve(ctx context.Context, c *varlink.Call) error {
	if c.Member != "Subscribe" {
		return c.ReplyMethodNotFound(ctx)
	}
	return f.subscribe(ctx, c)
}

// The wire names of the kinds of change a filter may name.
var eventKindNames = map[string]service.EventKind{
	"registered":   service.MachineNew,
	"removed":      service.MachineRemoved,
	"stateChanged": service.MachineStateChanged,
}

func eventKindName(k service.EventKind) string {
	for name, v := range eventKindNames {
		if v == k {
			return name
		}
	}
	return ""
}

type eventMachineJSON struct {
	machineJSON
	State string `json:"state,omitempty"`
}

type eventJSON struct {
	Event   string            `json:"event"`
	Machine *eventMachineJSON `json:"machine,omitempty"`
	Reason  string            `json:"reason,omitempty"`
}

// flushChunk is how much of a batch of events is written at once. Flush waits
// for room in the socket first, which is then far more than this, so the write
// never blocks on a client that stopped reading.
const flushChunk = 16 << 10

// maxKinds bounds the kinds list as it is decoded (the core checks its own bound).
const maxKinds = 8

func (f *eventsIface) subscribe(ctx context.Context, c *varlink.Call) error {
	var name, class string
	var kinds []string
	var interactive bool
	if err := varlink.DecodeParams(c.Parameters,
		varlink.StrField("name", &name, false),
		varlink.StrField("class", &class, false),
		varlink.StrListField("kinds", &kinds, maxKinds),
		varlink.BoolField("allowInteractiveAuthentication", &interactive),
	); err != nil {
		return replyError(ctx, c, err)
	}
	filter := service.EventFilter{Name: name, Class: service.Class(class)}
	for _, k := range kinds {
		kind, ok := eventKindNames[k]
		if !ok {
			return c.ReplyInvalidParameter(ctx, "kinds")
		}
		filter.Kinds = append(filter.Kinds, kind)
	}
	if err := filter.Validate(); err != nil {
		return replyError(ctx, c, err)
	}
	if !c.WantsMore() {
		return c.ReplyError(ctx, varlink.NameExpectedMore, struct{}{})
	}
	viewer := f.mgr.Viewer(ctx, callerOf(ctx, interactive), name)
	send := func(event string, mi *service.MachineInfo, reason service.Reason) error {
		r := eventJSON{Event: event, Reason: string(reason)}
		if mi != nil {
			v := viewer.View(*mi)
			r.Machine = &eventMachineJSON{toJSON(v, nil), string(v.State)}
		}
		return c.Reply(ctx, r)
	}

	snap, w, err := f.mgr.WatchAs(callerOf(ctx, interactive), service.EventBacklog)
	if err != nil {
		return replyError(ctx, c, err)
	}
	defer w.Cancel()
	c.Continues = true
	for i := range snap {
		if filter.Selects(&snap[i]) {
			if err := send("existing", &snap[i], service.ReasonNone); err != nil {
				return err // the connection is gone
			}
		}
		if c.Buffered() >= flushChunk {
			if err := c.Flush(ctx); err != nil {
				return err
			}
		}
	}
	if err := send("snapshotComplete", nil, service.ReasonNone); err != nil {
		return err
	}
	hungUp := c.Done()
	for {
		if err := c.Flush(ctx); err != nil {
			return err
		}
		select {
		case <-hungUp:
			return nil
		case <-ctx.Done():
			return nil
		case <-w.Ready():
		}
		evs, end := w.Take()
		for _, ev := range evs {
			if !filter.Passes(ev) {
				continue
			}
			if err := send(eventKindName(ev.Kind), ev.Machine, ev.Reason); err != nil {
				return err
			}
			if c.Buffered() >= flushChunk {
				if err := c.Flush(ctx); err != nil {
					return err
				}
			}
		}
		if errors.Is(end, service.ErrBacklogExceeded) {
			if err := c.Flush(ctx); err != nil {
				return err
			}
			c.Continues = false
			return c.ReplyError(ctx, errorName(end), backlogExceeded{Limit: service.EventBacklog})
		}
		if end != nil {
			// The daemon is stopping: ending the connection ends the stream.
			return end
		}
	}
}

type backlogExceeded struct {
	Limit int `json:"limit"`
}
