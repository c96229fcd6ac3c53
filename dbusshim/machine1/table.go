package machine1

import (
	"fmt"
	"sort"
	"strings"

	"github.com/godbus/dbus/v5"
)

// The tables below describe each interface once; introspection, signature
// checks, Get and GetAll all read them, so they cannot drift apart.

// arg is one named argument of a method or signal.
type arg struct{ name, sig string }

// method is one D-Bus method and the function answering it. fn returns the
// reply values in order; their Go types must encode to the out signatures.
type method struct {
	name    string
	in, out []arg
	fn      func(c *call) ([]any, error)
}

func (m *method) inSig() string { return joinSigs(m.in) }

type signal struct {
	name string
	args []arg
}

// Values of the EmitsChangedSignal annotation.
const (
	emitsTrue  = "" // the default: no annotation
	emitsFalse = "false"
	emitsConst = "const"
)

// property is one D-Bus property. get returns a value whose Go type encodes to
// sig; set, when not nil, makes the property writable.
type property struct {
	name       string
	sig        string
	emits      string
	hidden     bool // answered by Get, left out of GetAll and introspection (sd-bus SD_BUS_VTABLE_HIDDEN)
	privileged bool // writing needs a privileged caller
	private    bool // shows a field the core withholds from a restricted view
	get        func(c *call) (any, error)
	set        func(c *call, v dbus.Variant) error
}

// iface is one interface of an object.
type iface struct {
	name    string
	methods []method
	signals []signal
	props   []property
}

func (i *iface) method(name string) *method {
	for k := range i.methods {
		if i.methods[k].name == name {
			return &i.methods[k]
		}
	}
	return nil
}

func (i *iface) property(name string) *property {
	for k := range i.props {
		if i.props[k].name == name {
			return &i.props[k]
		}
	}
	return nil
}

func joinSigs(args []arg) string {
	var b strings.Builder
	for _, a := range args {
		b.WriteString(a.sig)
	}
	return b.String()
}

func args(pairs ...string) []arg {
	out := make([]arg, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, arg{name: pairs[i+1], sig: pairs[i]})
	}
	return out
}

// The standard interfaces every object implements, in sd-bus's wording.
const standardXML = ` <interface name="org.freedesktop.DBus.Peer">
  <method name="Ping"/>
  <method name="GetMachineId">
   <arg type="s" name="machine_uuid" direction="out"/>
  </method>
 </interface>
 <interface name="org.freedesktop.DBus.Introspectable">
  <method name="Introspect">
   <arg name="xml_data" type="s" direction="out"/>
  </method>
 </interface>
 <interface name="org.freedesktop.DBus.Properties">
  <method name="Get">
   <arg name="interface_name" direction="in" type="s"/>
   <arg name="property_name" direction="in" type="s"/>
   <arg name="value" direction="out" type="v"/>
  </method>
  <method name="GetAll">
   <arg name="interface_name" direction="in" type="s"/>
   <arg name="props" direction="out" type="a{sv}"/>
  </method>
  <method name="Set">
   <arg name="interface_name" direction="in" type="s"/>
   <arg name="property_name" direction="in" type="s"/>
   <arg name="value" direction="in" type="v"/>
  </method>
  <signal name="PropertiesChanged">
   <arg type="s" name="interface_name"/>
   <arg type="a{sv}" name="changed_properties"/>
   <arg type="as" name="invalidated_properties"/>
  </signal>
 </interface>
`

const xmlHeader = `<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
"https://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
`

// introspect renders the introspection document of an object with the given
// interfaces and child node names.
func introspect(ifaces []*iface, children []string) string {
	var b strings.Builder
	b.WriteString(xmlHeader)
	b.WriteString("<node>\n")
	b.WriteString(standardXML)
	for _, i := range ifaces {
		fmt.Fprintf(&b, " <interface name=%q>\n", i.name)
		for _, m := range i.methods {
			if len(m.in)+len(m.out) == 0 {
				fmt.Fprintf(&b, "  <method name=%q/>\n", m.name)
				continue
			}
			fmt.Fprintf(&b, "  <method name=%q>\n", m.name)
			for _, a := range m.in {
				fmt.Fprintf(&b, "   <arg type=%q name=%q direction=\"in\"/>\n", a.sig, a.name)
			}
			for _, a := range m.out {
				fmt.Fprintf(&b, "   <arg type=%q name=%q direction=\"out\"/>\n", a.sig, a.name)
			}
			b.WriteString("  </method>\n")
		}
		for _, s := range i.signals {
			fmt.Fprintf(&b, "  <signal name=%q>\n", s.name)
			for _, a := range s.args {
				fmt.Fprintf(&b, "   <arg type=%q name=%q/>\n", a.sig, a.name)
			}
			b.WriteString("  </signal>\n")
		}
		for _, p := range i.props {
			if p.hidden {
				continue
			}
			access := "read"
			if p.set != nil {
				access = "readwrite"
			}
			fmt.Fprintf(&b, "  <property name=%q type=%q access=%q>\n", p.name, p.sig, access)
			if p.emits != emitsTrue {
				fmt.Fprintf(&b, "   <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" value=%q/>\n", p.emits)
			}
			if p.privileged && p.set != nil {
				b.WriteString("   <annotation name=\"org.freedesktop.systemd1.Privileged\" value=\"true\"/>\n")
			}
			b.WriteString("  </property>\n")
		}
		b.WriteString(" </interface>\n")
	}
	sort.Strings(children)
	for _, c := range children {
		fmt.Fprintf(&b, " <node name=%q/>\n", c)
	}
	b.WriteString("</node>\n")
	return b.String()
}
