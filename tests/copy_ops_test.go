package tests

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/machined-go/machined/internal/leasetest"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/client"
	"github.com/machined-go/machined/service/ops"
)

// logCount is how many lines of the daemon's log contain s.
func (d *daemon) logCount(s string) int {
	b, _ := os.ReadFile(filepath.Join(d.dir, "daemon.log"))
	return strings.Count(string(b), s)
}

// 64 copies held on a leased file fill the operation slots: the 65th is
// TooManyOperations on Varlink and LimitsExceeded on D-Bus, while the daemon
// serves everything else; released, the 64 complete.
func TestCopyOperationLimit(t *testing.T) {
	d, bus := startBusDaemon(t, "--units", "none")
	root := makeRootfs(t)
	l := spawnContainer(t, root, 0)
	register(t, d, "cp-limit", l.pid)
	host := t.TempDir()
	writeOwnedFile(t, host+"/held", "held\n", 0o644, 0, 0)
	h := leasetest.Hold(t, host+"/held")

	var wg sync.WaitGroup
	errs := make([]error, ops.Max)
	for i := range ops.Max {
		c := dialClient(t, d)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.CopyTo(context.Background(), client.ByName("cp-limit"), client.CopyRequest{Source: host + "/held", Destination: "/tmp/held-" + strconv.Itoa(i)})
		}()
	}
	eventually(t, "64 copies waiting on the lease", func() bool { return h.Waiters(t) == ops.Max })

	c := dialClient(t, d)
	wantReply(t, c.CopyFrom(context.Background(), client.ByName("cp-limit"), client.CopyRequest{Source: "/etc/passwd", Destination: host + "/x"}), "io.systemd.Machine.TooManyOperations")
	call := managerCall(t, dbusConn(t, bus), "CopyFromMachine", "cp-limit", "/etc/passwd", host+"/y")
	if name := dbusErrorName(call.Err); name != "org.freedesktop.DBus.Error.LimitsExceeded" {
		t.Errorf("65th copy on D-Bus: %v", call.Err)
	}
	if _, err := getOne(t, d, "cp-limit"); err != nil {
		t.Fatalf("daemon while the slots are full: %v", err)
	}

	h.Release()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("held copy %d: %v", i, err)
		} else if s := readFile(t, inContainer(l, "/tmp/held-"+strconv.Itoa(i))); s != "held\n" {
			t.Errorf("held copy %d: %q", i, s)
		}
	}
	if _, err := os.Stat(host + "/x"); err == nil {
		t.Error("the refused copy wrote")
	}
}

// A client that hangs up mid-copy ends it (Varlink and D-Bus), and so does the
// machine going away: nothing is left under the final name, nor under a
// temporary one.
func TestCopyCancelled(t *testing.T) {
	d, bus := startBusDaemon(t, "--units", "none")
	root := makeRootfs(t)
	l := spawnContainer(t, root, 0)
	register(t, d, "cp-cancel", l.pid)
	host := t.TempDir()
	writeOwnedFile(t, host+"/held", "held\n", 0o644, 0, 0)

	// finish releases the lease once the daemon has cancelled, and waits for
	// the copy to end: its failure is logged.
	finish := func(h *leasetest.Lease, cancelled, failed int) {
		t.Helper()
		eventually(t, "the copy cancelled", func() bool { return d.logCount("operation cancelled") > cancelled })
		h.Release()
		eventually(t, "the cancelled copy ended", func() bool { return d.logCount("operation failed") > failed })
	}
	// hangUpVarlink starts a Varlink CopyTo, waits until it blocks on h's
	// lease and hangs up.
	hangUpVarlink := func(t *testing.T, h *leasetest.Lease, source, destination string) {
		t.Helper()
		conn, err := net.Dial("unix", d.sock())
		if err != nil {
			t.Fatal(err)
		}
		msg := `{"method":"io.systemd.Machine.CopyTo","parameters":{"name":"cp-cancel","source":"` + source + `","destination":"` + destination + `"}}` + "\x00"
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the copy waiting on the lease", func() bool { return h.Waiters(t) == 1 })
		conn.Close()
	}
	noTrace := func(name string) {
		t.Helper()
		if _, err := os.Lstat(root + "/tmp/" + name); err == nil {
			t.Errorf("cancelled copy left /tmp/%s", name)
		}
		if left := tempLeft(t, root+"/tmp"); len(left) > 0 {
			t.Errorf("cancelled copy left %v", left)
		}
	}

	t.Run("varlink hangup", func(t *testing.T) {
		h := leasetest.Hold(t, host+"/held")
		cancelled, failed := d.logCount("operation cancelled"), d.logCount("operation failed")
		hangUpVarlink(t, h, host+"/held", "/tmp/by-varlink")
		finish(h, cancelled, failed)
		noTrace("by-varlink")
	})

	// A tree is copied by a helper process, which learns of the hang-up by a
	// signal, asynchronously: the lease is released once it has had time to,
	// and the open it is blocked in then completes into a copy that stops
	// there and removes what it had made.
	t.Run("varlink hangup, tree", func(t *testing.T) {
		if err := os.MkdirAll(host+"/tree/sub", 0o755); err != nil {
			t.Fatal(err)
		}
		writeOwnedFile(t, host+"/tree/a", "a\n", 0o644, 0, 0)
		writeOwnedFile(t, host+"/tree/sub/held", "held\n", 0o644, 0, 0)
		h := leasetest.Hold(t, host+"/tree/sub/held")
		cancelled, failed := d.logCount("operation cancelled"), d.logCount("operation failed")
		hangUpVarlink(t, h, host+"/tree", "/tmp/tree-by-varlink")
		eventually(t, "the copy cancelled", func() bool { return d.logCount("operation cancelled") > cancelled })
		time.Sleep(500 * time.Millisecond)
		h.Release()
		eventually(t, "the cancelled copy ended", func() bool { return d.logCount("operation failed") > failed })
		noTrace("tree-by-varlink")
	})

	t.Run("dbus hangup", func(t *testing.T) {
		h := leasetest.Hold(t, host+"/held")
		cancelled, failed := d.logCount("operation cancelled"), d.logCount("operation failed")
		conn, err := dbus.Connect(bus.addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.Object("org.freedesktop.machine1", "/org/freedesktop/machine1").Go("org.freedesktop.machine1.Manager.CopyToMachine", 0, nil, "cp-cancel", host+"/held", "/tmp/by-dbus")
		eventually(t, "the copy waiting on the lease", func() bool { return h.Waiters(t) == 1 })
		conn.Close()
		finish(h, cancelled, failed)
		noTrace("by-dbus")
	})

	t.Run("leader dies", func(t *testing.T) {
		h := leasetest.Hold(t, host+"/held")
		c := dialClient(t, d)
		done := make(chan error, 1)
		go func() {
			done <- c.CopyTo(context.Background(), client.ByName("cp-cancel"), client.CopyRequest{Source: host + "/held", Destination: "/tmp/by-dead"})
		}()
		eventually(t, "the copy waiting on the lease", func() bool { return h.Waiters(t) == 1 })
		l.kill()
		eventually(t, "cp-cancel gone", func() bool { return gone(t, d, "cp-cancel") })
		h.Release()
		wantReply(t, <-done, "io.systemd.Machine.NoSuchMachine")
		noTrace("by-dead")
	})
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(d.pid()))); err != nil {
		t.Fatal("daemon gone")
	}
}
