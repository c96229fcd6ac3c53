package tests

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/client"
)

// The D-Bus methods hand out the same terminal and root directory, as fds:
// OpenMachinePTY and the Machine object's OpenPTY a terminal of the
// container's devpts, OpenMachineRootDirectory and OpenRootDirectory its
// "/". Bad input gets upstream's errors, and strangers get nothing.
func TestDBusTerminalsAndRootDirectory(t *testing.T) {
	d, bus := startBusDaemon(t, "--units", "auto", "--stop-timeout", "1s")
	name := "pty-dbus-" + strconv.Itoa(os.Getpid())
	leader := startBusyboxContainer(t, d, bus, name)
	registerReq(t, d, client.RegisterRequest{Name: "pty-vm", LeaderPID: spawnLeader(t).pid, Class: client.ClassVM})
	c := dbusConn(t, bus)
	machine := c.Object(m1Dest, dbus.ObjectPath(m1Path+"/machine/"+escapeLabel(name)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	checkPTY := func(what string, call *dbus.Call) {
		t.Helper()
		var fd dbus.UnixFD
		var path string
		if err := call.Store(&fd, &path); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		master := pollable(t, os.NewFile(uintptr(fd), "master"))
		tty, err := os.OpenFile(fmt.Sprintf("/proc/%d/root%s", leader, path), os.O_RDWR|unix.O_NOCTTY, 0)
		if err != nil {
			t.Fatalf("%s: %s is not in the container: %v", what, path, err)
		}
		defer tty.Close()
		tty.WriteString(what + "\n")
		readUntil(t, master, what)
	}
	checkPTY("OpenMachinePTY", managerCall(t, c, "OpenMachinePTY", name))
	checkPTY("OpenPTY", machine.CallWithContext(ctx, m1Machine+".OpenPTY", 0))

	checkRoot := func(what string, call *dbus.Call) {
		t.Helper()
		var fd dbus.UnixFD
		if err := call.Store(&fd); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		defer unix.Close(int(fd))
		f, err := unix.Openat(int(fd), "usr/lib/os-release", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("%s: os-release: %v", what, err)
		}
		b := make([]byte, 64)
		n, _ := unix.Read(f, b)
		unix.Close(f)
		if !strings.HasPrefix(string(b[:n]), `NAME="TestBox"`) {
			t.Errorf("%s: os-release reads %q", what, b[:n])
		}
	}
	checkRoot("OpenMachineRootDirectory", managerCall(t, c, "OpenMachineRootDirectory", name))
	checkRoot("OpenRootDirectory", machine.CallWithContext(ctx, m1Machine+".OpenRootDirectory", 0))

	for _, tc := range []struct {
		what     string
		call     *dbus.Call
		name     string
		contains string
	}{
		{"relative path", managerCall(t, c, "OpenMachineShell", name, "", "bin/sh", []string{}, []string{}), "org.freedesktop.DBus.Error.InvalidArgs", "Specified path 'bin/sh' is not absolute"},
		{"bad user", managerCall(t, c, "OpenMachineShell", name, "a:b", "", []string{}, []string{}), "org.freedesktop.DBus.Error.InvalidArgs", "Invalid user name 'a:b'"},
		{"bad environment", managerCall(t, c, "OpenMachineShell", name, "", "", []string{}, []string{"1A=b"}), "org.freedesktop.DBus.Error.InvalidArgs", "Invalid environment assignments"},
		{"VM pty", managerCall(t, c, "OpenMachinePTY", "pty-vm"), "org.freedesktop.DBus.Error.NotSupported", ""},
		{"VM shell", managerCall(t, c, "OpenMachineShell", "pty-vm", "", "", []string{}, []string{}), "org.freedesktop.DBus.Error.NotSupported", ""},
		{"VM root", managerCall(t, c, "OpenMachineRootDirectory", "pty-vm"), "org.freedesktop.DBus.Error.NotSupported", "Opening the root directory is only supported on container machines"},
		{"unknown machine", managerCall(t, c, "OpenMachinePTY", "pty-none"), "org.freedesktop.machine1.NoSuchMachine", ""},
	} {
		var de dbus.Error
		if !asDBusError(tc.call.Err, &de) || de.Name != tc.name || !strings.Contains(fmt.Sprint(de.Body...), tc.contains) {
			t.Errorf("%s: %v, want %s %q", tc.what, tc.call.Err, tc.name, tc.contains)
		}
	}

	// Strangers: nobody may not open anything in root's container.
	for _, args := range [][]string{
		{"OpenMachinePTY", "s", name},
		{"OpenMachineLogin", "s", name},
		{"OpenMachineShell", "sssasas", name, "", "", "0", "0"},
		{"OpenMachineRootDirectory", "s", name},
	} {
		out, errOut, code := busctl(t, bus, nobody, append([]string{"call", m1Dest, m1Path, m1Manager}, args...)...)
		if code == 0 || !strings.Contains(errOut, "ccess denied") && !strings.Contains(errOut, "AccessDenied") && !strings.Contains(errOut, "requires privileges") {
			t.Errorf("%s as nobody: %d %s %s", args[0], code, out, errOut)
		}
	}
}

// An unprivileged user's machine whose leader runs in the host's user
// namespace is the host's, root's: its owner gets no terminal, shell or root
// directory in it without polkit, and strangers get nothing in root's. A
// machine whose leader has died is gone.
func TestVarlinkTerminalRefusals(t *testing.T) {
	needRoot(t)
	d := startDaemon(t)
	own := spawnLeaderWith(t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}})
	nc := dialClient(t, d, asNobody())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := nc.Register(ctx, client.RegisterRequest{Name: "nobodys", Class: client.ClassContainer, LeaderPID: own.pid}); err != nil {
		t.Fatalf("nobody registers its own process: %v", err)
	}
	register(t, d, "roots", spawnLeader(t).pid)
	for _, name := range []string{"nobodys", "roots", ".host"} {
		for _, mode := range []client.OpenMode{client.OpenTTY, client.OpenLogin, client.OpenShell} {
			f, _, err := nc.Open(ctx, client.ByName(name), client.OpenRequest{Mode: mode})
			if f != nil {
				f.Close()
			}
			wantReply(t, err, "org.varlink.service.PermissionDenied")
		}
		f, err := nc.OpenRootDirectory(ctx, client.ByName(name))
		if f != nil {
			f.Close()
		}
		wantReply(t, err, "org.varlink.service.PermissionDenied")
	}

	dying := spawnLeader(t)
	register(t, d, "dying", dying.pid)
	dying.kill()
	eventually(t, "the machine of a dead leader goes", func() bool { return gone(t, d, "dying") })
	_, _, err := dialClient(t, d).Open(ctx, client.ByName("dying"), client.OpenRequest{Mode: client.OpenTTY})
	wantReply(t, err, "io.systemd.Machine.NoSuchMachine")
	if _, err := getOne(t, d, "roots"); err != nil {
		t.Fatalf("the daemon stopped serving: %v", err)
	}
}

// Every terminal and root directory handed out leaves the daemon with none
// of its fds: after a warm-up call on each path, a hundred more leave its fd
// table as it was.
func TestTerminalFDsDoNotLeak(t *testing.T) {
	d, bus := startBusDaemon(t, "--units", "none")
	c := dialClient(t, d)
	dc := dbusConn(t, bus)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	round := func() {
		t.Helper()
		f, _, err := c.Open(ctx, client.ByName(".host"), client.OpenRequest{Mode: client.OpenTTY})
		if err != nil {
			t.Fatalf("Open tty: %v", err)
		}
		f.Close()
		if f, err = c.OpenRootDirectory(ctx, client.ByName(".host")); err != nil {
			t.Fatalf("OpenRootDirectory: %v", err)
		}
		f.Close()
		if _, _, err := c.Open(ctx, client.ByName(".host"), client.OpenRequest{Mode: client.OpenShell}); err == nil {
			t.Fatal("a shell without a host bus")
		}
		var fd dbus.UnixFD
		var path string
		if err := managerCall(t, dc, "OpenMachinePTY", ".host").Store(&fd, &path); err != nil {
			t.Fatalf("OpenMachinePTY: %v", err)
		}
		unix.Close(int(fd))
		if err := managerCall(t, dc, "OpenMachineRootDirectory", ".host").Store(&fd); err != nil {
			t.Fatalf("OpenMachineRootDirectory: %v", err)
		}
		unix.Close(int(fd))
	}
	fds := func() int {
		entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.pid()))
		if err != nil {
			t.Fatal(err)
		}
		return len(entries)
	}
	round()
	before := fds()
	for range 100 {
		round()
	}
	// A few fds may come and go with the daemon's own work meanwhile (bus
	// credentials, idle workers); a leak per call would be hundreds.
	if after := fds(); after > before+10 {
		t.Errorf("the daemon holds %d fds after 100 rounds, %d before", after, before)
	}
}
