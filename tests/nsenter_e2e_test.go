package tests

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/machined-go/machined/client"
)

// A shell and a login through the daemon into a container that runs no
// service manager (nspawn with sleep as its payload): the daemon enters the
// container itself, where upstream answers NoIPC.
func TestShellWithoutBus(t *testing.T) {
	d, bus := startBusDaemon(t, "--units", "auto", "--stop-timeout", "1s")
	name := "nsenter-" + strconv.Itoa(os.Getpid())
	startBusyboxContainer(t, d, bus, name)
	c := dialClient(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pty, path, err := c.Open(ctx, client.ByName(name), client.OpenRequest{Mode: client.OpenShell, User: "root", Path: "/bin/sh", Args: []string{"sh", "-c", "id; echo on $(tty); echo shell-done"}})
	if err != nil {
		t.Fatal(err)
	}
	out := readUntil(t, pollable(t, pty), "shell-done")
	for _, want := range []string{"uid=0(root) gid=0(root)", "on " + path} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in %q", want, out)
		}
	}
	// The default: the user's shell as a login shell, through upstream's
	// wrapper.
	pty, _, err = c.Open(ctx, client.ByName(name), client.OpenRequest{Mode: client.OpenShell})
	if err != nil {
		t.Fatal(err)
	}
	master := pollable(t, pty)
	master.WriteString("echo default-$((6*7)); exit\n")
	readUntil(t, master, "default-42")

	_, _, err = c.Open(ctx, client.ByName(name), client.OpenRequest{Mode: client.OpenShell, User: "mallory"})
	if !errors.Is(err, client.ErrNoSuchUser) {
		t.Errorf("unknown user: %v, want NoSuchUser", err)
	}
	pty, _, err = c.Open(ctx, client.ByName(name), client.OpenRequest{Mode: client.OpenLogin})
	if err != nil {
		t.Fatal(err)
	}
	readUntil(t, pollable(t, pty), "login: ")
}

// machinectl 252 shell, through the D-Bus shim, into busybox containers that
// run no service manager, with and without a user namespace.
func TestMachinectlShellWithoutBus(t *testing.T) {
	d, bus := startBusDaemon(t, "--units", "auto", "--stop-timeout", "1s")
	sfx := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name string
		opts []string
	}{
		{"nsenter-plain-" + sfx, nil},
		{"nsenter-userns-" + sfx, []string{"--private-users=pick"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.opts) > 0 {
				needUserNS(t)
			}
			startBusyboxContainer(t, d, bus, tc.name, tc.opts...)
			out, errOut, code := inSystemdNS(t, d, bus, -1, "machinectl", "--no-pager", "-q", "shell", tc.name, "/bin/sh", "-c", "id; cat /proc/self/uid_map; echo mctl-done")
			if code != 0 || !strings.Contains(out, "uid=0(root) gid=0(root)") || !strings.Contains(out, "mctl-done") {
				t.Errorf("machinectl shell: %d\n%s%s", code, out, errOut)
			}
		})
	}
}
