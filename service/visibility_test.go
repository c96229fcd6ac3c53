package service

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
)

func fullInfo(name string, uid uint32) MachineInfo {
	return MachineInfo{
		Name: name, ID: [16]byte{1}, Service: "svc", Class: ClassVM,
		Leader: ProcessID{PID: 10, PIDFDID: 11, BootID: "b"}, Supervisor: ProcessID{PID: 12},
		RootDirectory: "/srv/x", Unit: "machine-x.scope", Subgroup: "payload",
		Timestamp: Timestamp{1, 2}, NetIf: []int{3}, VSockCID: 7,
		SSHAddress: "vsock/7:22", SSHPrivateKeyPath: "/k", ControlAddress: "unix:/c",
		UID: uid, State: StateRunning,
	}
}

// A restricted view keeps exactly what clients need to find and reach a
// machine; everyone else's view is the machine itself.
func TestViewerRestrictedView(t *testing.T) {
	m, err := New(Config{StateDir: filepath.Join(t.TempDir(), "machines")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	ctx := context.Background()
	user := Caller{UID: 4242, PIDFD: -1}
	other := fullInfo("x", 0)
	got := m.Viewer(ctx, user, "").View(other)
	want := MachineInfo{
		Name: "x", ID: [16]byte{1}, Service: "svc", Class: ClassVM, Unit: "machine-x.scope",
		Subgroup: "payload", Timestamp: Timestamp{1, 2}, NetIf: []int{3}, VSockCID: 7,
		State: StateRunning, Restricted: true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("restricted view\n got %+v\nwant %+v", got, want)
	}
	if err := m.Viewer(ctx, user, "x").Inspect(other); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("Inspect without an authority: %v", err)
	}
	own := fullInfo("mine", 4242)
	if got := m.Viewer(ctx, user, "").View(own); !reflect.DeepEqual(got, own) {
		t.Errorf("owner's view: %+v", got)
	}
	if got := m.Viewer(ctx, root, "").View(other); !reflect.DeepEqual(got, other) {
		t.Errorf("root's view: %+v", got)
	}
	// .host is root's even to a caller whose uid matches its UID field.
	host := fullInfo(HostName, 4242)
	if got := m.Viewer(ctx, user, "").View(host); !got.Restricted {
		t.Error(".host shown in full to an unprivileged caller")
	}
}

// The authority is asked once per Viewer, only for machines the caller does
// not own, with the request's machine name or "n/a"; its refusal, interactive
// or not, restricts the view.
func TestViewerAsksOnce(t *testing.T) {
	for _, answer := range []error{nil, ErrPermissionDenied, ErrInteractiveAuth} {
		authz := &namingAuthorizer{err: answer}
		m, err := New(Config{StateDir: filepath.Join(t.TempDir(), "machines"), Authorizer: authz})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		user := Caller{UID: 4242, PIDFD: -1}
		v := m.Viewer(ctx, user, "")
		if v.View(fullInfo("mine", 4242)).Restricted || len(authz.names) != 0 {
			t.Errorf("asked about the caller's own machine: %v", authz.names)
		}
		for _, n := range []string{"a", "b", "c"} {
			if got := v.View(fullInfo(n, 0)).Restricted; got != (answer != nil) {
				t.Errorf("answer %v: restricted = %v", answer, got)
			}
		}
		if len(authz.names) != 1 || authz.names[0] != NoDetailsName || authz.actions[0] != ActionInspectMachines {
			t.Errorf("answer %v: asked %v %v, want once for %q", answer, authz.actions, authz.names, NoDetailsName)
		}
		if err := m.Viewer(ctx, user, "a").Inspect(fullInfo("a", 0)); !errors.Is(err, answer) || authz.names[1] != "a" {
			t.Errorf("Inspect: %v, asked %v", err, authz.names)
		}
		m.Viewer(ctx, root, "").View(fullInfo("a", 0))
		if len(authz.names) != 2 {
			t.Errorf("root's view asked the authority")
		}
		m.Close()
	}
}

type namingAuthorizer struct {
	actions, names []string
	err            error
}

func (a *namingAuthorizer) Check(_ context.Context, _ Caller, action string, details map[string]string) error {
	a.actions = append(a.actions, action)
	a.names = append(a.names, details["name"])
	return a.err
}
