package service

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// A per-user instance serves its user and root only, and takes registrations
// from its user only: root is refused there too, with upstream's words. The
// system instance serves everyone. The instance runs as 65534 here (ownUID is
// what the daemon's euid would be).
func TestUserScope(t *testing.T) {
	saved := ownUID
	ownUID = 65534
	t.Cleanup(func() { ownUID = saved })
	m, err := New(Config{StateDir: filepath.Join(t.TempDir(), "machines"), UserScope: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	if !m.UserScope() {
		t.Error("UserScope() = false")
	}
	for uid, want := range map[uint32]bool{65534: true, 0: true, 4242: false, 65533: false} {
		if got := m.Admits(uid); got != want {
			t.Errorf("Admits(%d) = %v, want %v", uid, got, want)
		}
	}
	ctx := context.Background()
	user := Caller{UID: 65534, GID: 65534, PIDFD: -1}
	if _, err := m.Register(ctx, user, RegisterRequest{Name: "mine", Class: "container", Leader: startSleepAs(t, 65534).Process.Pid}); err != nil {
		t.Fatalf("the instance's user: %v", err)
	}
	for _, c := range []Caller{root, {UID: 4242, GID: 4242, PIDFD: -1}} {
		leader := startSleepAs(t, c.UID)
		_, err := m.Register(ctx, c, RegisterRequest{Name: "theirs", Class: "container", Leader: leader.Process.Pid})
		if !errors.Is(err, ErrPermissionDenied) || !strings.Contains(err.Error(), "other users may not register machines with us") {
			t.Errorf("uid %d registering: %v, want the other-users refusal", c.UID, err)
		}
	}
	if got := len(m.List()); got != 1 {
		t.Errorf("%d machines, want 1 (no .host, no refused one)", got)
	}

	sys, err := New(Config{StateDir: filepath.Join(t.TempDir(), "machines"), HostMachine: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sys.Close)
	if sys.UserScope() || !sys.Admits(4242) || !sys.Admits(65533) {
		t.Error("the system instance must serve every user")
	}
}
