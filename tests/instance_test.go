package tests

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A second daemon on the same runtime directory refuses to start before it
// touches anything, and the first one keeps answering on its sockets, also
// after the second has exited.
func TestSecondInstanceRefused(t *testing.T) {
	d := startDaemon(t)
	userdbSock := d.userdbSock()
	before, err := os.Lstat(d.sock())
	if err != nil {
		t.Fatal(err)
	}

	second := exec.Command(daemonBin, "--runtime-dir", d.dir, "--bus", "none")
	var stderr strings.Builder
	second.Stderr = &stderr
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- second.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-time.After(20 * time.Second):
		second.Process.Kill()
		<-done
		t.Fatal("the second instance was still running 20 s after it started")
	}
	if werr == nil {
		t.Fatalf("the second instance exited 0; stderr: %s", stderr.String())
	}
	msg := stderr.String()
	if !strings.Contains(msg, "already serves") || !strings.Contains(msg, "pid "+strconv.Itoa(d.pid())) {
		t.Errorf("the refusal does not name the running daemon: %q", msg)
	}

	after, err := os.Lstat(d.sock())
	if err != nil {
		t.Fatalf("the machine socket is gone: %v", err)
	}
	if !os.SameFile(before, after) {
		t.Error("the machine socket file was replaced")
	}
	if _, err := os.Lstat(userdbSock); err != nil {
		t.Errorf("the userdb socket is gone: %v", err)
	}
	if out, errOut, code := varlinkctl(t, "info", "unix:"+d.sock()); code != 0 {
		t.Fatalf("the first daemon does not answer after the second exited: %s %s", out, errOut)
	}
	if out, errOut, code := varlinkctl(t, "info", "unix:"+userdbSock); code != 0 {
		t.Fatalf("the first daemon's userdb socket does not answer: %s %s", out, errOut)
	}
}
