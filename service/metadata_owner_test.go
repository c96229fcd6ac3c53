package service

import (
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/machined-go/machined/service/proc"
)

// Reads for an unprivileged owner use the leader's gid when the owner owns the
// leader, else nogroup; root-owned machines read as the daemon.
func TestOwnerOf(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a process as another user")
	}
	cmd := exec.Command("sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 4242, Gid: 4343}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	leader, err := proc.Open(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer leader.Close()
	for _, tc := range []struct {
		uid  uint32
		want proc.Owner
	}{
		{4242, proc.Owner{UID: 4242, GID: 4343}},
		{5555, proc.Owner{UID: 5555, GID: nogroup}},
		{0, proc.Owner{}},
	} {
		if got := ownerOf(MachineInfo{UID: tc.uid}, leader); got != tc.want {
			t.Errorf("ownerOf(uid %d) = %+v, want %+v", tc.uid, got, tc.want)
		}
	}
}
