package resolvehook

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"

	"github.com/machined-go/machined/service"
	"github.com/machined-go/machined/service/proc"
	"github.com/machined-go/machined/varlink"
)

//go:embed idl/io.systemd.Resolve.Hook.varlink
var hookIDL string

// SocketName is the hook socket's name in resolved's hook directory: the
// service's, as resolved names its hooks.
const SocketName = "io.systemd.Machine"

// MaxQuestion bounds the keys of one ResolveRecord call. A resolver asks for a
// handful at once (A and AAAA, a name in UTF-8 and in IDNA).
const MaxQuestion = 64

// hookIface serves io.systemd.Resolve.Hook.
type hookIface struct {
	mgr *service.Manager
}

// New builds the dispatcher of the resolve hook socket.
func New(mgr *service.Manager, id varlink.Identity, log *slog.Logger) *varlink.Dispatcher {
	return varlink.NewDispatcher(id, log, &hookIface{mgr: mgr})
}

func (*hookIface) Name() string        { return "io.systemd.Resolve.Hook" }
func (*hookIface) Description() string { return hookIDL }

func (f *hookIface) Serve(ctx context.Context, c *varlink.Call) error {
	switch c.Member {
	case "QueryFilter":
		return f.queryFilter(ctx, c)
	case "ResolveRecord":
		return f.resolveRecord(ctx, c)
	}
	return c.ReplyMethodNotFound(ctx)
}

type filter struct {
	FilterDomains []string `json:"filterDomains"`
}

// queryFilter answers the machines' names: lookups of other names need not
// come to us. With 'more' it is a subscription: a new filter follows every
// change of the set of names, until the resolver hangs up. Connection caps
// bound the subscriptions; each costs no more than its goroutine.
func (f *hookIface) queryFilter(ctx context.Context, c *varlink.Call) error {
	if err := varlink.DecodeParams(c.Parameters); err != nil {
		return replyError(ctx, c, err)
	}
	if !c.WantsMore() {
		return c.Reply(ctx, filter{FilterDomains: f.mgr.HostNames()})
	}
	names, changed := f.mgr.WatchHostNames()
	c.Continues = true
	if err := c.Reply(ctx, filter{FilterDomains: names}); err != nil {
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
		case <-changed:
		}
		// The filter is a whole: the names now, sent only when they differ
		// (a machine that came and went in between changes nothing).
		var now []string
		now, changed = f.mgr.WatchHostNames()
		if !slices.Equal(now, names) {
			names = now
			if err := c.Reply(ctx, filter{FilterDomains: names}); err != nil {
				return err
			}
		}
	}
}

type resolved struct {
	RCode  *int     `json:"rcode,omitempty"`
	Answer []answer `json:"answer,omitempty"`
}

// resolveRecord answers the keys of a machine's name with its addresses, a
// name below a machine's with NXDOMAIN, and anything else with nothing, which
// lets the resolver go on.
func (f *hookIface) resolveRecord(ctx context.Context, c *varlink.Call) error {
	var keys []resourceKey
	err := varlink.DecodeParams(c.Parameters, varlink.ListField("question", MaxQuestion, func(v json.RawMessage) error {
		k, err := decodeQuestion(v)
		keys = append(keys, k)
		return err
	}))
	if err != nil {
		return replyError(ctx, c, err)
	}
	if len(keys) == 0 {
		return c.ReplyInvalidParameter(ctx, "question")
	}
	var (
		found, below bool
		answers      = []answer{}
		addrsOf      = map[string][]proc.Address{} // each machine's own, read once per call
	)
	for _, k := range keys {
		match, mi := f.mgr.MatchHostName(k.Name)
		switch match {
		case service.NameBelowMachine:
			below = true
			continue
		case service.NameUnknown:
			continue
		}
		found = true
		if k.Class != classIN || k.Type != typeA && k.Type != typeAAAA {
			continue
		}
		addrs, ok := addrsOf[mi.Name]
		if !ok {
			if addrs, err = f.mgr.HostAddresses(ctx, mi); err != nil {
				return replyError(ctx, c, err)
			}
			addrsOf[mi.Name] = addrs
		}
		for _, a := range addrs {
			if addressType(a.Family) == k.Type {
				answers = append(answers, addressAnswer(mi.Name, a.Family, a.Addr))
			}
		}
	}
	switch {
	case found:
		rc := rcodeOK
		return c.Reply(ctx, resolved{RCode: &rc, Answer: answers})
	case below:
		rc := rcodeNoSuchName
		return c.Reply(ctx, resolved{RCode: &rc})
	}
	return c.Reply(ctx, nil)
}

// decodeQuestion decodes one Question: {key: {class?, type, name}}.
func decodeQuestion(v json.RawMessage) (resourceKey, error) {
	k := resourceKey{Class: classIN}
	var class, typ int64
	var hasClass, hasKey bool
	err := varlink.DecodeParams(&v, varlink.FuncField("key", func(kv json.RawMessage) error {
		hasKey = true
		return varlink.DecodeParams(&kv,
			varlink.IntField("class", &class, &hasClass, false, 0, math.MaxUint16),
			varlink.IntField("type", &typ, nil, true, 0, math.MaxUint16),
			varlink.StrField("name", &k.Name, true),
		)
	}))
	if err != nil {
		return k, fmt.Errorf("question: %w", err)
	}
	if !hasKey {
		return k, fmt.Errorf("question without a key")
	}
	if hasClass {
		k.Class = int(class)
	}
	k.Type = int(typ)
	return k, nil
}
