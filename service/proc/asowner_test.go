package proc

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// secretFile makes a root-only file (0600) in a directory other users may
// traverse but not list (0711), so that a user can name it (to bind-mount it)
// but not read it.
func secretFile(t *testing.T, content string) string {
	t.Helper()
	needRoot(t)
	dir, err := os.MkdirTemp("/tmp", "asowner-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "secret.env")
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// threadStatus reads a field ("Uid:", "Gid:", "CapEff:") of the calling
// thread's status.
func threadStatus(t *testing.T, key string) string {
	data, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		t.Error(err)
		return ""
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			return strings.Join(strings.Fields(rest), " ")
		}
	}
	return ""
}

// As an unprivileged owner, a root-only file cannot be opened; the thread that
// tried has the owner's fs ids, no groups and no effective capability but
// CAP_SYS_PTRACE, and is gone afterwards. Root keeps root's view.
func TestAsOwner(t *testing.T) {
	secret := secretFile(t, "TOKEN=hunter2\n")
	var uids, gids, groups, capEff string
	err := AsOwner(Owner{UID: 65534, GID: 65534}, func() error {
		uids, gids, capEff = threadStatus(t, "Uid:"), threadStatus(t, "Gid:"), threadStatus(t, "CapEff:")
		groups = threadStatus(t, "Groups:")
		_, err := os.ReadFile(secret)
		return err
	})
	if !errors.Is(err, syscall.EACCES) {
		t.Errorf("reading a root-only file as nobody: %v, want EACCES", err)
	}
	// Real, effective, saved, fs: only the fs ids change.
	if uids != "0 0 0 65534" || gids != "0 0 0 65534" {
		t.Errorf("thread ids: Uid %q Gid %q, want the fs ids 65534", uids, gids)
	}
	if groups != "" {
		t.Errorf("thread supplementary groups %q, want none", groups)
	}
	if capEff != "0000000000080000" {
		t.Errorf("thread effective capabilities %q, want CAP_SYS_PTRACE alone", capEff)
	}
	if err := AsOwner(Owner{}, func() error { _, err := os.ReadFile(secret); return err }); err != nil {
		t.Errorf("reading as root: %v", err)
	}

	// Enough rounds that some land on the main thread's goroutine slot; no
	// thread of ours may keep another identity afterwards.
	for range 50 {
		AsOwner(Owner{UID: 4242, GID: 4242}, func() error { return nil })
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		stray := threadsNotRoot(t)
		if len(stray) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("threads %v kept the owner's identity", stray)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func threadsNotRoot(t *testing.T) []string {
	t.Helper()
	return threadsWhere(t, func(tid string) (string, bool) {
		data, err := os.ReadFile("/proc/self/task/" + tid + "/status")
		if err != nil {
			return "", false // gone meanwhile
		}
		return tid, !bytes.Contains(data, []byte("\nUid:\t0\t0\t0\t0\n")) || !bytes.Contains(data, []byte("\nGid:\t0\t0\t0\t0\n"))
	})
}

// threadsWhere lists what odd says of each of our threads it picks out.
func threadsWhere(t *testing.T, odd func(tid string) (string, bool)) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if what, ok := odd(e.Name()); ok {
			out = append(out, what)
		}
	}
	return out
}

// userNSLeader starts, as nobody, a leader in its own user and mount namespace
// that has bind-mounted file over its /etc/os-release.
func userNSLeader(t *testing.T, file string) *PidRef {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare")
	}
	probe := exec.Command("unshare", "-Urm", "true")
	probe.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := probe.CombinedOutput(); err != nil {
		t.Skipf("unprivileged user namespaces unavailable: %v %s", err, out)
	}
	cmd := startChild(t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}},
		"unshare", "-Urm", "sh", "-c", `mount --bind "$0" /etc/os-release && exec sleep 60`, file)
	deadline := time.Now().Add(10 * time.Second)
	for {
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/comm")
		if strings.TrimSpace(string(comm)) == "sleep" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the leader never got to exec sleep")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return openChild(t, cmd)
}

// A user who can bind-mount a root-only file over /etc/os-release in their own
// mount namespace does not get it read for them: the read is done as them.
func TestOSReleaseReadAsOwner(t *testing.T) {
	secret := secretFile(t, "TOKEN=hunter2\n")
	p := userNSLeader(t, secret)

	osr, err := OSRelease(p, Owner{UID: 65534, GID: 65534})
	if !errors.Is(err, syscall.EACCES) {
		t.Errorf("OSRelease as nobody = %q, %v; want EACCES", osr, err)
	}
	if slices.ContainsFunc(osr, func(s string) bool { return strings.Contains(s, "hunter2") }) {
		t.Errorf("secret read as nobody: %q", osr)
	}
	// The same leader through root's eyes shows the mount is really there.
	osr, err = OSRelease(p, Owner{})
	if err != nil || !slices.Equal(osr, []string{"TOKEN=hunter2"}) {
		t.Errorf("OSRelease as root = %q, %v; want the bind-mounted file", osr, err)
	}
}

// A file the owner may read is read as before.
func TestOSReleaseOwnerReadable(t *testing.T) {
	secret := secretFile(t, "ID=mine\n")
	if err := os.Chmod(secret, 0o644); err != nil {
		t.Fatal(err)
	}
	p := userNSLeader(t, secret)
	osr, err := OSRelease(p, Owner{UID: 65534, GID: 65534})
	if err != nil || !slices.Equal(osr, []string{"ID=mine"}) {
		t.Errorf("OSRelease as nobody = %q, %v; want ID=mine", osr, err)
	}
}
