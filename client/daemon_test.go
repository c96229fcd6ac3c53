package client_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/machined-go/machined/client"
)

// socketPath is the machine socket the examples talk to. In a program, "" (or
// client.DefaultPath) names the system's; here TestMain points it at a daemon of
// its own, built from this repository and run on a temporary directory, so that
// the examples run and their output is checked.
var socketPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "client-examples-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	stop, err := startDaemon(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client examples: cannot start a daemon:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startDaemon builds cmd/machined and runs it on dir, Varlink only, until stop.
func startDaemon(dir string) (stop func(), err error) {
	bin := filepath.Join(dir, "machined")
	build := exec.Command("go", "build", "-o", bin, "../cmd/machined")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	cmd := exec.Command(bin, "--runtime-dir", dir, "--bus", "none", "--units", "none", "--log-level", "err")
	cmd.Env = append(os.Environ(), "MACHINED_SYSTEMD_SYSTEM_DIR="+filepath.Join(dir, "no-systemd"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop = func() { cmd.Process.Kill(); cmd.Wait() }
	socketPath = filepath.Join(dir, "systemd", "machine", "io.systemd.Machine")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if c, err := client.Dial(ctx, socketPath); err == nil {
			_, err = c.Get(ctx, client.ByName(".host"), client.MetadataNo)
			c.Close()
			if err == nil {
				return stop, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	return nil, fmt.Errorf("the daemon did not answer on %s", socketPath)
}
