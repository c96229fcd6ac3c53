package machineimage

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"math"

	"github.com/machined-go/machined/service"
	"github.com/machined-go/machined/varlink"
)

const ifaceName = "io.systemd.MachineImage"

//go:embed idl/io.systemd.MachineImage.varlink
var imageIDL string

// Iface serves io.systemd.MachineImage: decode strictly, call the core, encode.
type Iface struct {
	mgr *service.Manager
}

// New returns the interface, for the machine socket's dispatcher.
func New(mgr *service.Manager) *Iface { return &Iface{mgr: mgr} }

func (*Iface) Name() string        { return ifaceName }
func (*Iface) Description() string { return imageIDL }

var methods = map[string]func(*Iface, context.Context, *varlink.Call) error{
	"List":         (*Iface).list,
	"Update":       (*Iface).update,
	"Clone":        (*Iface).clone,
	"Remove":       (*Iface).remove,
	"SetPoolLimit": (*Iface).setPoolLimit,
	"CleanPool":    (*Iface).cleanPool,
}

func (f *Iface) Serve(ctx context.Context, c *varlink.Call) error {
	h, ok := methods[c.Member]
	if !ok {
		return c.ReplyMethodNotFound(ctx)
	}
	return h(f, ctx, c)
}

// callerOf describes the peer to the core.
func callerOf(ctx context.Context, interactive bool) service.Caller {
	c := service.Caller{PIDFD: -1, Interactive: interactive}
	if p, ok := varlink.PeerFromContext(ctx); ok {
		c.UID, c.GID, c.PID = p.UID, p.GID, p.PID
	} else {
		c.UID = math.MaxUint32 // unknown peers are nobody
	}
	return c
}

// untilHangup is ctx, ended also when the client hangs up: an operation
// (clone, removal, clean) nobody waits for any more stops, as upstream kills
// its worker when the connection goes.
func untilHangup(ctx context.Context, c *varlink.Call) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	hangup := c.Done()
	go func() {
		select {
		case <-hangup:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// optBool decodes a nullable bool whose absence matters.
func optBool(name string, dst **bool) varlink.Field {
	return varlink.FuncField(name, func(v json.RawMessage) error {
		var b bool
		switch string(v) {
		case "true":
			b = true
		case "false":
		default:
			return errors.New("not a bool")
		}
		*dst = &b
		return nil
	})
}

// optString decodes a nullable string whose absence matters.
func optString(name string, dst **string) varlink.Field {
	return varlink.FuncField(name, func(v json.RawMessage) error {
		if len(v) == 0 || v[0] != '"' {
			return errors.New("not a string")
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return err
		}
		*dst = &s
		return nil
	})
}

func replyEmpty(ctx context.Context, c *varlink.Call) error { return c.Reply(ctx, nil) }

func (f *Iface) list(ctx context.Context, c *varlink.Call) error {
	var name, mode string
	var interactive bool
	if err := varlink.DecodeParams(c.Parameters,
		varlink.StrField("name", &name, false),
		varlink.StrField("acquireMetadata", &mode, false),
		varlink.BoolField("allowInteractiveAuthentication", &interactive),
	); err != nil {
		return replyError(ctx, c, err)
	}
	var md service.MetadataMode
	switch mode {
	case "", "no":
	case "yes":
		md = service.MetadataYes
	case "graceful":
		md = service.MetadataGraceful
	default:
		return replyError(ctx, c, &varlink.ParamError{Name: "acquireMetadata"})
	}
	if name == "" && !c.WantsMore() {
		return c.ReplyError(ctx, varlink.NameExpectedMore, struct{}{})
	}
	list, err := f.mgr.ListImages(ctx, callerOf(ctx, interactive), name, md)
	if err != nil {
		return replyError(ctx, c, err)
	}
	if len(list) == 0 {
		return replyError(ctx, c, service.ErrNoSuchImage)
	}
	for i, e := range list {
		c.Continues = i < len(list)-1
		if err := c.Reply(ctx, toJSON(e)); err != nil {
			return err // the connection is gone
		}
	}
	return nil
}

func (f *Iface) update(ctx context.Context, c *varlink.Call) error {
	var u service.ImageUpdate
	var interactive, hasLimit bool
	var limit int64
	if err := varlink.DecodeParams(c.Parameters,
		varlink.StrField("name", &u.Name, true),
		varlink.BoolField("allowInteractiveAuthentication", &interactive),
		optString("newName", &u.NewName),
		optBool("readOnly", &u.ReadOnly),
		varlink.IntField("limit", &limit, &hasLimit, false, 0, math.MaxInt64),
	); err != nil {
		return replyError(ctx, c, err)
	}
	if hasLimit {
		l := uint64(limit)
		u.Limit = &l
	}
	if err := f.mgr.UpdateImage(ctx, callerOf(ctx, interactive), u); err != nil {
		return replyError(ctx, c, err)
	}
	return replyEmpty(ctx, c)
}

func (f *Iface) clone(ctx context.Context, c *varlink.Call) error {
	var name, newName string
	var ro *bool
	var interactive bool
	if err := varlink.DecodeParams(c.Parameters,
		varlink.StrField("name", &name, true),
		varlink.BoolField("allowInteractiveAuthentication", &interactive),
		varlink.StrField("newName", &newName, true),
		optBool("readOnly", &ro),
	); err != nil {
		return replyError(ctx, c, err)
	}
	ctx, cancel := untilHangup(ctx, c)
	defer cancel()
	if err := f.mgr.CloneImage(ctx, callerOf(ctx, interactive), name, newName, ro != nil && *ro); err != nil {
		return replyError(ctx, c, err)
	}
	return replyEmpty(ctx, c)
}

func (f *Iface) remove(ctx context.Context, c *varlink.Call) error {
	var name string
	var interactive bool
	if err := varlink.DecodeParams(c.Parameters,
		varlink.StrField("name", &name, true),
		varlink.BoolField("allowInteractiveAuthentication", &interactive),
	); err != nil {
		return replyError(ctx, c, err)
	}
	ctx, cancel := untilHangup(ctx, c)
	defer cancel()
	if err := f.mgr.RemoveImage(ctx, callerOf(ctx, interactive), name); err != nil {
		return replyError(ctx, c, err)
	}
	return replyEmpty(ctx, c)
}

func (f *Iface) setPoolLimit(ctx context.Context, c *varlink.Call) error {
	var limit int64
	var interactive bool
	if err := varlink.DecodeParams(c.Parameters,
		varlink.BoolField("allowInteractiveAuthentication", &interactive),
		varlink.IntField("limit", &limit, nil, true, 0, math.MaxInt64),
	); err != nil {
		return replyError(ctx, c, err)
	}
	if err := f.mgr.SetPoolLimit(ctx, callerOf(ctx, interactive), uint64(limit)); err != nil {
		return replyError(ctx, c, err)
	}
	return replyEmpty(ctx, c)
}

func (f *Iface) cleanPool(ctx context.Context, c *varlink.Call) error {
	var mode string
	var interactive bool
	if err := varlink.DecodeParams(c.Parameters,
		varlink.BoolField("allowInteractiveAuthentication", &interactive),
		varlink.StrField("mode", &mode, true),
	); err != nil {
		return replyError(ctx, c, err)
	}
	if mode != service.CleanPoolAll && mode != service.CleanPoolHidden {
		return replyError(ctx, c, &varlink.ParamError{Name: "mode"})
	}
	if !c.WantsMore() {
		return c.ReplyError(ctx, varlink.NameExpectedMore, struct{}{})
	}
	ctx, cancel := untilHangup(ctx, c)
	defer cancel()
	removed, err := f.mgr.CleanPool(ctx, callerOf(ctx, interactive), mode)
	if err != nil {
		return replyError(ctx, c, err)
	}
	if len(removed) == 0 {
		return replyError(ctx, c, service.ErrNoSuchImage)
	}
	for i, r := range removed {
		c.Continues = i < len(removed)-1
		var usage *uint64
		if r.UsageExclusive != math.MaxUint64 {
			usage = &r.UsageExclusive
		}
		if err := c.Reply(ctx, struct {
			Name           string  `json:"name"`
			UsageExclusive *uint64 `json:"usageExclusive,omitempty"`
		}{r.Name, usage}); err != nil {
			return err
		}
	}
	return nil
}
