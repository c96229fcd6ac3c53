package service

import (
	"strings"
	"testing"

	"github.com/machined-go/machined/service/persist"
	"github.com/machined-go/machined/service/proc"
)

// Lookups take any valid machine name and .host; the name rule itself is
// persist's (TestValidMachineName there).
func TestValidLookupName(t *testing.T) {
	for n, want := range map[string]bool{"a": true, HostName: true, "a_b": false, "": false, ".hos": false} {
		if ValidLookupName(n) != want {
			t.Errorf("ValidLookupName(%q) = %v, want %v", n, !want, want)
		}
	}
}

func TestRegisterValidation(t *testing.T) {
	cid := func(v uint32) *uint32 { return &v }
	base := func() RegisterRequest { return RegisterRequest{Name: "ok", Class: "container", Leader: 100} }
	for _, tc := range []struct {
		desc  string
		mod   func(*RegisterRequest)
		field string // "" means NotSupported
	}{
		{"empty name", func(r *RegisterRequest) { r.Name = "" }, "name"},
		{"underscore", func(r *RegisterRequest) { r.Name = "a_b" }, "name"},
		{"dot host", func(r *RegisterRequest) { r.Name = ".host" }, "name"},
		{"no class", func(r *RegisterRequest) { r.Class = "" }, "class"},
		{"bad class", func(r *RegisterRequest) { r.Class = "pod" }, "class"},
		{"host class", func(r *RegisterRequest) { r.Class = "host" }, "class"},
		{"pid 1", func(r *RegisterRequest) { r.Leader = 1 }, "leader"},
		{"negative pid", func(r *RegisterRequest) { r.Leader = -5 }, "leader"},
		{"relative root", func(r *RegisterRequest) { r.RootDirectory = "var/lib" }, "rootDirectory"},
		{"long root", func(r *RegisterRequest) { r.RootDirectory = "/" + strings.Repeat("a", 256) }, "rootDirectory"},
		{"ifindex 0", func(r *RegisterRequest) { r.NetIf = []int{1, 0} }, "ifIndices"},
		{"vsock any", func(r *RegisterRequest) { r.VSockCID = cid(VSockCIDAny) }, "vSockCid"},
		{"vsock host", func(r *RegisterRequest) { r.VSockCID = cid(2) }, "vSockCid"},
		{"relative key", func(r *RegisterRequest) { r.SSHPrivateKeyPath = "id_rsa" }, "sshPrivateKeyPath"},
		{"dotdot root", func(r *RegisterRequest) { r.RootDirectory = "/var/lib/machines/../../etc" }, "rootDirectory"},
		{"dotdot root end", func(r *RegisterRequest) { r.RootDirectory = "/var/.." }, "rootDirectory"},
		{"dotdot key", func(r *RegisterRequest) { r.SSHPrivateKeyPath = "/run/../root/.ssh/id_rsa" }, "sshPrivateKeyPath"},
		{"too many ifindices", func(r *RegisterRequest) { r.NetIf = make([]int, MaxNetIf+1); fill(r.NetIf) }, "ifIndices"},
		{"too many scope properties", func(r *RegisterRequest) { r.ScopeProperties = make([]UnitProperty, MaxScopeProperties+1) }, "scopeProperties"},
		{"long root path", func(r *RegisterRequest) { r.RootDirectory = longPath(maxPathLen + 1) }, "rootDirectory"},
		{"long key path", func(r *RegisterRequest) { r.SSHPrivateKeyPath = longPath(maxPathLen + 1) }, "sshPrivateKeyPath"},
		{"long service", func(r *RegisterRequest) { r.Service = strings.Repeat("s", maxPathLen+1) }, "service"},
		{"long ssh address", func(r *RegisterRequest) { r.SSHAddress = strings.Repeat("s", maxPathLen+1) }, "sshAddress"},
		{"long control address", func(r *RegisterRequest) { r.ControlAddress = strings.Repeat("s", maxPathLen+1) }, "controlAddress"},
		{"newline service", func(r *RegisterRequest) { r.Service = "a\nb" }, "service"},
		{"control chars address", func(r *RegisterRequest) { r.ControlAddress = "unix:/x\x01" }, "controlAddress"},
	} {
		r := base()
		tc.mod(&r)
		_, err := r.validate()
		ia, ok := AsInvalidArg(err)
		if !ok || ia.Field != tc.field {
			t.Errorf("%s: got %v, want invalid %s", tc.desc, err, tc.field)
		}
	}
	r := base()
	r.VSockCID = cid(3)
	r.NetIf = []int{1, 2}
	r.RootDirectory = "/var/lib/machines/ok"
	if _, err := r.validate(); err != nil {
		t.Errorf("valid request refused: %v", err)
	}

	// Every bound is inclusive.
	r = base()
	r.NetIf = make([]int, MaxNetIf)
	fill(r.NetIf)
	r.ScopeProperties = make([]UnitProperty, MaxScopeProperties)
	for i := range r.ScopeProperties {
		r.ScopeProperties[i] = UnitProperty{Name: "After", Value: StringListValue{"a.service"}}
	}
	r.RootDirectory = longPath(maxPathLen)
	r.SSHPrivateKeyPath = "/run/..key/./x.." // ".." only as a whole component
	r.Service = strings.Repeat("s", maxPathLen)
	r.SSHAddress = strings.Repeat("s", maxPathLen)
	r.ControlAddress = strings.Repeat("s", maxPathLen)
	if _, err := r.validate(); err != nil {
		t.Errorf("request at the bounds refused: %v", err)
	}
}

func fill(ifs []int) {
	for i := range ifs {
		ifs[i] = i + 1
	}
}

// longPath is an absolute path of n bytes made of 200-byte components.
func longPath(n int) string {
	var b strings.Builder
	for b.Len() < n {
		c := min(200, n-b.Len()-1)
		b.WriteString("/" + strings.Repeat("p", c))
	}
	return b.String()
}

func TestValidSignal(t *testing.T) {
	for sig, want := range map[int]bool{0: false, 1: true, 15: true, 64: true, 65: false, -1: false} {
		if ValidSignal(sig) != want {
			t.Errorf("ValidSignal(%d) != %v", sig, want)
		}
	}
}

// The request bounds keep every valid registration's state file within what a
// restart reads back: the worst case (every string at its bound and made of
// bytes the encoder escapes, every interface index at its widest) fits.
func TestWorstCaseRecordFits(t *testing.T) {
	quoted := strings.Repeat(`"`, maxPathLen)
	var path strings.Builder
	for path.Len() < maxPathLen {
		path.WriteString("/" + strings.Repeat(`"`, min(254, maxPathLen-path.Len()-1)))
	}
	r := RegisterRequest{
		Name: strings.Repeat("a", 64), Class: "container", Leader: 100,
		Service: quoted, SSHAddress: quoted, ControlAddress: quoted,
		RootDirectory: path.String(), SSHPrivateKeyPath: path.String(),
		NetIf: make([]int, MaxNetIf),
	}
	for i := range r.NetIf {
		r.NetIf[i] = 1<<31 - 1
	}
	cid := uint32(1 << 30)
	r.VSockCID = &cid
	if _, err := r.validate(); err != nil {
		t.Fatalf("worst case refused: %v", err)
	}
	caller := Caller{UID: ^uint32(0), PID: 1<<22 - 2, PIDFD: -1, PIDFDID: ^uint64(0)}
	leader := &proc.PidRef{PID: 1<<22 - 1, ID: ^uint64(0)}
	rec := r.record(caller, ClassContainer, leader, "machine-"+r.Name+".scope", strings.Repeat("s", maxPathLen))
	rec.Realtime, rec.Monotonic = ^uint64(0), ^uint64(0)
	if n := len(persist.Encode(rec)); n > persist.MaxFileSize {
		t.Errorf("worst-case record is %d bytes, over %d", n, persist.MaxFileSize)
	}
}

// Every field naming the leader must name a real PID, and the same one.
func TestNameLeader(t *testing.T) {
	var r RegisterRequest
	if err := r.NameLeader("leader", 0); !isInvalidArg(err, "leader") {
		t.Errorf("leader 0: %v", err)
	}
	if err := r.NameLeader("leader", 42); err != nil || r.Leader != 42 {
		t.Fatalf("leader 42: %v, Leader %d", err, r.Leader)
	}
	if err := r.NameLeader("leaderProcessId", 42); err != nil {
		t.Errorf("the same process named twice: %v", err)
	}
	err := r.NameLeader("leaderProcessId", 43)
	if ia, ok := AsInvalidArg(err); !ok || ia.Field != "leaderProcessId" || ia.Reason != "leader and leaderProcessId refer to different processes" {
		t.Errorf("two processes: %v", err)
	}
}
