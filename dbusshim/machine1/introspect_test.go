package machine1

import (
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/service"
)

// upstream* are the members of systemd-machined v262 as its introspection
// data has them (argument names as in the org.freedesktop.machine1(5) man page).
var upstreamManager = []string{
	"method GetMachine(in s name, out o machine)",
	"method GetImage(in s name, out o image)",
	"method GetMachineByPID(in u pid, out o machine)",
	"method ListMachines(out a(ssso) machines)",
	"method ListImages(out a(ssbttto) images)",
	"method CreateMachine(in s name, in ay id, in s service, in s class, in u leader, in s root_directory, in a(sv) scope_properties, out o path)",
	"method CreateMachineWithNetwork(in s name, in ay id, in s service, in s class, in u leader, in s root_directory, in ai ifindices, in a(sv) scope_properties, out o path)",
	"method CreateMachineEx(in s name, in a(sv) properties, in a(sv) scope_properties, out o path)",
	"method RegisterMachine(in s name, in ay id, in s service, in s class, in u leader, in s root_directory, out o path)",
	"method RegisterMachineWithNetwork(in s name, in ay id, in s service, in s class, in u leader, in s root_directory, in ai ifindices, out o path)",
	"method RegisterMachineEx(in s name, in a(sv) properties, out o path)",
	"method UnregisterMachine(in s name)",
	"method TerminateMachine(in s id)",
	"method KillMachine(in s name, in s whom, in i signal)",
	"method GetMachineAddresses(in s name, out a(iay) addresses)",
	"method GetMachineSSHInfo(in s name, out s ssh_address, out s ssh_private_key_path)",
	"method GetMachineOSRelease(in s name, out a{ss} fields)",
	"method OpenMachinePTY(in s name, out h pty, out s pty_path)",
	"method OpenMachineLogin(in s name, out h pty, out s pty_path)",
	"method OpenMachineShell(in s name, in s user, in s path, in as args, in as environment, out h pty, out s pty_path)",
	"method BindMountMachine(in s name, in s source, in s destination, in b read_only, in b mkdir)",
	"method CopyFromMachine(in s name, in s source, in s destination)",
	"method CopyToMachine(in s name, in s source, in s destination)",
	"method CopyFromMachineWithFlags(in s name, in s source, in s destination, in t flags)",
	"method CopyToMachineWithFlags(in s name, in s source, in s destination, in t flags)",
	"method OpenMachineRootDirectory(in s name, out h fd)",
	"method GetMachineUIDShift(in s name, out u shift)",
	"method RemoveImage(in s name)",
	"method RenameImage(in s name, in s new_name)",
	"method CloneImage(in s name, in s new_name, in b read_only)",
	"method MarkImageReadOnly(in s name, in b read_only)",
	"method GetImageHostname(in s name, out s hostname)",
	"method GetImageMachineID(in s name, out ay id)",
	"method GetImageMachineInfo(in s name, out a{ss} machine_info)",
	"method GetImageOSRelease(in s name, out a{ss} os_release)",
	"method SetPoolLimit(in t size)",
	"method SetImageLimit(in s name, in t size)",
	"method CleanPool(in s mode, out a(st) images)",
	"method MapFromMachineUser(in s name, in u uid_inner, out u uid_outer)",
	"method MapToMachineUser(in u uid_outer, out s machine_name, out o machine_path, out u uid_inner)",
	"method MapFromMachineGroup(in s name, in u gid_inner, out u gid_outer)",
	"method MapToMachineGroup(in u gid_outer, out s machine_name, out o machine_path, out u gid_inner)",
	"signal MachineNew(s machine, o path)",
	"signal MachineRemoved(s machine, o path)",
	"property PoolPath s read false",
	"property PoolUsage t read false",
	"property PoolLimit t read false",
}

var upstreamMachine = []string{
	"method Terminate()",
	"method Kill(in s whom, in i signal)",
	"method GetAddresses(out a(iay) addresses)",
	"method GetSSHInfo(out s ssh_address, out s ssh_private_key_path)",
	"method GetOSRelease(out a{ss} fields)",
	"method GetUIDShift(out u shift)",
	"method OpenPTY(out h pty, out s pty_path)",
	"method OpenLogin(out h pty, out s pty_path)",
	"method OpenShell(in s user, in s path, in as args, in as environment, out h pty, out s pty_path)",
	"method BindMount(in s source, in s destination, in b read_only, in b mkdir)",
	"method CopyFrom(in s source, in s destination)",
	"method CopyTo(in s source, in s destination)",
	"method CopyFromWithFlags(in s source, in s destination, in t flags)",
	"method CopyToWithFlags(in s source, in s destination, in t flags)",
	"method OpenRootDirectory(out h fd)",
	"property Name s read const",
	"property Id ay read const",
	"property Timestamp t read const",
	"property TimestampMonotonic t read const",
	"property Service s read const",
	"property Unit s read const",
	"property Subgroup s read const",
	"property Leader u read const",
	"property LeaderPIDFDId t read const",
	"property Supervisor u read const",
	"property SupervisorPIDFDId t read const",
	"property Class s read const",
	"property RootDirectory s read const",
	"property NetworkInterfaces ai read const",
	"property VSockCID u read const",
	"property SSHAddress s read const",
	"property SSHPrivateKeyPath s read const",
	"property State s read false",
	"property UID u read const",
}

// upstreamImage is org.freedesktop.machine1.Image; its properties carry no
// flags upstream, which introspects as EmitsChangedSignal false.
var upstreamImage = []string{
	"method Remove()",
	"method Rename(in s new_name)",
	"method Clone(in s new_name, in b read_only)",
	"method MarkReadOnly(in b read_only)",
	"method SetLimit(in t limit)",
	"method GetHostname(out s hostname)",
	"method GetMachineID(out ay id)",
	"method GetMachineInfo(out a{ss} machine_info)",
	"method GetOSRelease(out a{ss} os_release)",
	"property Name s read false",
	"property Path s read false",
	"property Type s read false",
	"property ReadOnly b read false",
	"property CreationTimestamp t read false",
	"property ModificationTimestamp t read false",
	"property Usage t read false",
	"property Limit t read false",
	"property UsageExclusive t read false",
	"property LimitExclusive t read false",
}

var upstreamLogControl = []string{
	"property LogLevel s readwrite false",
	"property LogTarget s readwrite false",
	"property SyslogIdentifier s read false",
}

var standardInterfaces = map[string][]string{
	"org.freedesktop.DBus.Peer": {
		"method Ping()",
		"method GetMachineId(out s machine_uuid)",
	},
	"org.freedesktop.DBus.Introspectable": {
		"method Introspect(out s xml_data)",
	},
	"org.freedesktop.DBus.Properties": {
		"method Get(in s interface_name, in s property_name, out v value)",
		"method GetAll(in s interface_name, out a{sv} props)",
		"method Set(in s interface_name, in s property_name, in v value)",
		"signal PropertiesChanged(s interface_name, a{sv} changed_properties, as invalidated_properties)",
	},
}

type xNode struct {
	Interfaces []xIface `xml:"interface"`
	Nodes      []struct {
		Name string `xml:"name,attr"`
	} `xml:"node"`
}

type xIface struct {
	Name    string `xml:"name,attr"`
	Methods []struct {
		Name string `xml:"name,attr"`
		Args []xArg `xml:"arg"`
	} `xml:"method"`
	Signals []struct {
		Name string `xml:"name,attr"`
		Args []xArg `xml:"arg"`
	} `xml:"signal"`
	Props []struct {
		Name   string `xml:"name,attr"`
		Type   string `xml:"type,attr"`
		Access string `xml:"access,attr"`
		Annots []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:"value,attr"`
		} `xml:"annotation"`
	} `xml:"property"`
}

type xArg struct {
	Name      string `xml:"name,attr"`
	Type      string `xml:"type,attr"`
	Direction string `xml:"direction,attr"`
}

// members renders an introspected interface in the notation of upstream*.
func members(i xIface) []string {
	var out []string
	for _, m := range i.Methods {
		var a []string
		for _, x := range m.Args {
			a = append(a, fmt.Sprintf("%s %s %s", x.Direction, x.Type, x.Name))
		}
		out = append(out, fmt.Sprintf("method %s(%s)", m.Name, strings.Join(a, ", ")))
	}
	for _, s := range i.Signals {
		var a []string
		for _, x := range s.Args {
			a = append(a, fmt.Sprintf("%s %s", x.Type, x.Name))
		}
		out = append(out, fmt.Sprintf("signal %s(%s)", s.Name, strings.Join(a, ", ")))
	}
	for _, p := range i.Props {
		emits := "true"
		for _, an := range p.Annots {
			if an.Name == "org.freedesktop.DBus.Property.EmitsChangedSignal" {
				emits = an.Value
			}
		}
		out = append(out, fmt.Sprintf("property %s %s %s %s", p.Name, p.Type, p.Access, emits))
	}
	return out
}

func parseXML(t *testing.T, doc string) xNode {
	t.Helper()
	var n xNode
	if err := xml.Unmarshal([]byte(doc), &n); err != nil {
		t.Fatalf("introspection XML does not parse: %v\n%s", err, doc)
	}
	return n
}

func checkInterfaces(t *testing.T, doc string, want map[string][]string) {
	t.Helper()
	n := parseXML(t, doc)
	got := map[string][]string{}
	for _, i := range n.Interfaces {
		got[i.Name] = members(i)
	}
	for name, w := range want {
		g := got[name]
		ws, gs := slices.Clone(w), slices.Clone(g)
		slices.Sort(ws)
		slices.Sort(gs)
		if !slices.Equal(ws, gs) {
			for _, x := range ws {
				if !slices.Contains(gs, x) {
					t.Errorf("%s: missing %s", name, x)
				}
			}
			for _, x := range gs {
				if !slices.Contains(ws, x) {
					t.Errorf("%s: extra %s", name, x)
				}
			}
		}
		delete(got, name)
	}
	for name := range got {
		t.Errorf("unexpected interface %s", name)
	}
}

func withStandard(name string, members []string) map[string][]string {
	m := map[string][]string{name: members}
	for k, v := range standardInterfaces {
		m[k] = v
	}
	return m
}

func TestIntrospectionMatchesUpstream(t *testing.T) {
	s := New(Config{})
	checkInterfaces(t, introspect([]*iface{s.manager}, []string{"machine"}), withStandard(managerIface, upstreamManager))
	checkInterfaces(t, introspect([]*iface{s.machine}, nil), withStandard(machineIface, upstreamMachine))
	checkInterfaces(t, introspect([]*iface{s.logControl}, nil), withStandard(logControlIface, upstreamLogControl))
	checkInterfaces(t, introspect([]*iface{s.image}, nil), withStandard(imageIface, upstreamImage))

	n := parseXML(t, introspect(nil, []string{"machine1", "LogControl1"}))
	if len(n.Nodes) != 2 || n.Nodes[0].Name != "LogControl1" || n.Nodes[1].Name != "machine1" {
		t.Errorf("child nodes %+v", n.Nodes)
	}
}

// Every property's value encodes to the signature the table announces, for
// a machine with every field set and for an empty one.
func TestPropertySignatures(t *testing.T) {
	s := New(Config{})
	mgr, err := service.New(service.Config{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	s.mgr.Store(mgr)
	full := service.MachineInfo{
		Name: "x", ID: [16]byte{1}, Service: "s", Class: service.ClassContainer, Leader: service.ProcessID{PID: 5, PIDFDID: 7},
		Supervisor: service.ProcessID{PID: 6}, RootDirectory: "/r", Unit: "u.scope", Subgroup: "sub", NetIf: []int{2, 3},
		VSockCID: 9, SSHAddress: "a", SSHPrivateKeyPath: "/k", UID: 4, State: service.StateRunning,
	}
	for _, mi := range []service.MachineInfo{full, {}} {
		c := &call{s: s, obj: &object{machine: mi, image: service.Image{Name: "i", Path: "/p", Type: "raw", Usage: 5}}}
		for _, i := range []*iface{s.manager, s.machine, s.image, s.logControl} {
			for _, p := range i.props {
				v, err := p.get(c)
				if err != nil {
					t.Fatalf("%s.%s: %v", i.name, p.name, err)
				}
				if sig := dbus.SignatureOf(v).String(); sig != p.sig {
					t.Errorf("%s.%s: value has signature %s, table says %s", i.name, p.name, sig, p.sig)
				}
			}
		}
	}
}

// The dispatcher checks a call's signature against the concatenated
// argument types. (Reply signatures are checked by the server tests.)
func TestInSignatures(t *testing.T) {
	s := New(Config{})
	m := s.manager.method("CreateMachineWithNetwork")
	if m.inSig() != "sayssusaia(sv)" {
		t.Errorf("CreateMachineWithNetwork in %q", m.inSig())
	}
	if s.manager.method("RegisterMachine").inSig() != "sayssus" {
		t.Error("RegisterMachine")
	}
}
