package tests

import (
	"os/exec"
	"sync"
	"syscall"
	"testing"
)

// Some environments (a plain chroot, a container without CAP_SYS_ADMIN, a kernel
// with user namespaces disabled) cannot create the namespaces a few tests rely on.
// Those tests skip with the reason the probe found; CI has both kinds and runs them.

var userNSProbe = sync.OnceValue(func() error {
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 1 << 20, Size: 65536}}
	cmd := exec.Command("true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: m}
	return cmd.Run()
})

var mountNSProbe = sync.OnceValue(func() error {
	return exec.Command("unshare", "-m", "--propagation", "private", "true").Run()
})

// needUserNS skips a test that starts processes in new user namespaces when this
// environment cannot create one.
func needUserNS(t testing.TB) {
	t.Helper()
	if err := userNSProbe(); err != nil {
		t.Skipf("needs user namespaces, which this environment refuses (%v)", err)
	}
}

// needMountNS skips a test that runs clients in a private mount namespace when
// this environment cannot create one.
func needMountNS(t testing.TB) {
	t.Helper()
	if err := mountNSProbe(); err != nil {
		t.Skipf("needs mount namespaces, which this environment refuses (%v)", err)
	}
}
