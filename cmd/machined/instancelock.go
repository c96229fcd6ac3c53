package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// instanceLockName sits next to the Varlink socket: whoever holds the flock on
// it owns every path under the runtime directory, so a second daemon learns
// that before it binds, unlinks or rewrites anything.
const instanceLockName = "machined.lock"

// takeInstanceLock locks RUNTIME/systemd/machine/machined.lock for the life of
// the process (the kernel drops it when we die, however we die) and records
// our pid in it so that the next one can name us.
func takeInstanceLock(runtimeDir string) (*os.File, error) {
	dir := filepath.Join(runtimeDir, "systemd", "machine")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, instanceLockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			holder := "another process"
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(string(bytes.TrimSpace(b))); perr == nil && pid > 0 {
					holder = fmt.Sprintf("another machined (pid %d)", pid)
				}
			}
			return nil, fmt.Errorf("%s already serves %s (it holds %s); refusing to start", holder, runtimeDir, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}
