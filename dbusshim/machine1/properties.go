package machine1

import (
	"github.com/godbus/dbus/v5"
	"github.com/machined-go/machined/service"
)

// properties answers org.freedesktop.DBus.Properties on the resolved object.
func (s *Server) properties(c *call) ([]any, error) {
	switch c.member {
	case "Get", "GetAll":
		if err := s.restrictView(c); err != nil {
			return nil, err
		}
	}
	switch c.member {
	case "Get":
		if err := checkSig(c, "ss"); err != nil {
			return nil, err
		}
		ifn, name := c.body[0].(string), c.body[1].(string)
		p := c.obj.property(ifn, name)
		if p == nil {
			return nil, errorf(ErrUnknownProperty, "Unknown interface %s or property %s.", ifn, name)
		}
		if p.private && c.obj.machine.Restricted {
			return nil, errorf(ErrAccessDenied, "Access denied to property %s.", name)
		}
		v, err := p.get(c)
		if err != nil {
			return nil, err
		}
		return []any{dbus.MakeVariant(v)}, nil

	case "GetAll":
		if err := checkSig(c, "s"); err != nil {
			return nil, err
		}
		ifn := c.body[0].(string)
		out := map[string]dbus.Variant{}
		found := ifn == ""
		for _, i := range c.obj.ifaces {
			if ifn != "" && i.name != ifn {
				continue
			}
			found = true
			for k := range i.props {
				p := &i.props[k]
				if p.hidden || p.private && c.obj.machine.Restricted {
					continue
				}
				v, err := p.get(c)
				if err != nil {
					return nil, err
				}
				out[p.name] = dbus.MakeVariant(v)
			}
		}
		if !found {
			return nil, errorf(ErrUnknownIface, "Unknown interface '%s'.", ifn)
		}
		return []any{out}, nil

	case "Set":
		if err := checkSig(c, "ssv"); err != nil {
			return nil, err
		}
		ifn, name, v := c.body[0].(string), c.body[1].(string), c.body[2].(dbus.Variant)
		p := c.obj.property(ifn, name)
		if p == nil {
			return nil, errorf(ErrUnknownProperty, "Unknown interface %s or property %s.", ifn, name)
		}
		if p.set == nil {
			return nil, errorf(ErrPropertyRO, "Property '%s' is not writable.", name)
		}
		if v.Signature().String() != p.sig {
			return nil, errorf(ErrInvalidArgs, "Incorrect signature when setting property '%s', expected '%s', got '%s'.", name, p.sig, v.Signature().String())
		}
		if p.privileged {
			caller, err := c.callerOf()
			if err != nil {
				return nil, err
			}
			if !service.Privileged(caller.UID) {
				return nil, errorf(ErrAccessDenied, "Access denied to property %s.", name)
			}
		}
		if err := p.set(c, v); err != nil {
			return nil, err
		}
		return nil, nil
	}
	return nil, errorf(ErrUnknownMethod, "Unknown method %s or interface %s.", c.member, c.iface)
}

// property finds a property by interface (or any interface for "") and name.
func (o *object) property(ifn, name string) *property {
	for _, i := range o.ifaces {
		if ifn != "" && i.name != ifn {
			continue
		}
		if p := i.property(name); p != nil {
			return p
		}
	}
	return nil
}

// restrictView replaces a machine object's snapshot with the caller's view of
// it, for property reads.
func (s *Server) restrictView(c *call) error {
	if c.obj.machine.Name == "" {
		return nil
	}
	caller, err := c.callerOf()
	if err != nil {
		return err
	}
	o := *c.obj
	o.machine = c.mgr().Viewer(c.ctx, caller, o.machine.Name).View(o.machine)
	c.obj = &o
	return nil
}
