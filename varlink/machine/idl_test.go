package machine

import (
	"regexp"
	"strings"
	"testing"
)

// v262IDL is io.systemd.Machine as systemd v262 declares it, comments left
// out: the enums (MachineClass, KillWhom, AcquireMetadata, MachineOpenMode),
// every method's fields in order, and the errors.
const v262IDL = `interface io.systemd.Machine
type MachineClass(container, vm, host)
type KillWhom(leader, supervisor, all)
type AcquireMetadata(no, yes, graceful)
type MachineOpenMode(tty, login, shell)
type ProcessId(pid: int, pidfdId: ?int, bootId: ?string)
type Timestamp(realtime: ?int, monotonic: ?int)
type Address(ifindex: ?int, family: int, address: []int)
method Register(name: string, id: ?string, service: ?string, class: MachineClass, leader: ?int, leaderProcessId: ?ProcessId, supervisor: ?int, supervisorProcessId: ?ProcessId, rootDirectory: ?string, ifIndices: ?[]int, vSockCid: ?int, sshAddress: ?string, sshPrivateKeyPath: ?string, controlAddress: ?string, allocateUnit: ?bool, allowInteractiveAuthentication: ?bool) -> ()
method Unregister(name: ?string, pid: ?ProcessId, allowInteractiveAuthentication: ?bool) -> ()
method Terminate(name: ?string, pid: ?ProcessId, allowInteractiveAuthentication: ?bool) -> ()
method Kill(name: ?string, pid: ?ProcessId, allowInteractiveAuthentication: ?bool, whom: ?KillWhom, signal: int) -> ()
method List(name: ?string, pid: ?ProcessId, allowInteractiveAuthentication: ?bool, acquireMetadata: ?AcquireMetadata) -> (name: string, id: ?string, service: ?string, class: MachineClass, leader: ?ProcessId, supervisor: ?ProcessId, rootDirectory: ?string, unit: ?string, timestamp: ?Timestamp, vSockCid: ?int, sshAddress: ?string, sshPrivateKeyPath: ?string, controlAddress: ?string, addresses: ?[]Address, OSRelease: ?[]string, UIDShift: ?int, subgroup: ?string, UID: ?int)
method Open(name: ?string, pid: ?ProcessId, allowInteractiveAuthentication: ?bool, mode: MachineOpenMode, user: ?string, path: ?string, args: ?[]string, environment: ?[]string) -> (ptyFileDescriptor: int, ptyPath: string)
method MapFrom(name: ?string, pid: ?ProcessId, allowInteractiveAuthentication: ?bool, uid: ?int, gid: ?int) -> (uid: ?int, gid: ?int)
method MapTo(uid: ?int, gid: ?int) -> (uid: ?int, gid: ?int, machineName: ?string)
method BindMount(name: ?string, pid: ?ProcessId, allowInteractiveAuthentication: ?bool, source: string, destination: ?string, readOnly: ?bool, mkdir: ?bool) -> ()
method CopyFrom(name: ?string, pid: ?ProcessId, allowInteractiveAuthentication: ?bool, source: string, destination: ?string, replace: ?bool) -> ()
method CopyTo(name: ?string, pid: ?ProcessId, allowInteractiveAuthentication: ?bool, source: string, destination: ?string, replace: ?bool) -> ()
method OpenRootDirectory(name: ?string, pid: ?ProcessId, allowInteractiveAuthentication: ?bool) -> (fileDescriptor: int)
error NoSuchMachine()
error MachineExists()
error NoPrivateNetworking()
error NoOSReleaseInformation()
error NoUIDShift()
error NotAvailable()
error NotSupported()
error NoIPC()
error NoSuchUser()
error NoSuchGroup()
error UserInHostRange()
error GroupInHostRange()
`

// signature reduces an interface description to its declarations: no
// comments, one space where the layout had any, none inside parentheses.
func signature(desc string) string {
	var lines []string
	for _, l := range strings.Split(desc, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	s := strings.Join(lines, " ")
	s = regexp.MustCompile(`\s+`).ReplaceAllString(s, " ")
	s = strings.NewReplacer("( ", "(", " )", ")").Replace(s)
	return regexp.MustCompile(` (interface|type|method|error) `).ReplaceAllString(s, "\n$1 ")
}

// The interface we serve declares exactly v262's enums, fields and errors.
func TestMachineIDLIsV262(t *testing.T) {
	got, want := strings.Split(signature(machineIDL), "\n"), strings.Split(signature(v262IDL), "\n")
	for i := 0; i < max(len(got), len(want)); i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("declaration %d:\n got %s\nwant %s", i, g, w)
		}
	}
}
