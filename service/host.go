package service

import (
	"encoding/hex"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// hostMachine synthesizes .host: never saved, never collected, never found by PID.
func hostMachine(log *slog.Logger) *machine {
	id := hostID(log)
	vsock := VSockCIDAny
	if fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err == nil {
		unix.Close(fd)
		vsock = 1 // VMADDR_CID_LOCAL
	}
	rt, mono := bootTime()
	return &machine{
		name:     HostName,
		unit:     "-.slice",
		details:  &machineDetails{rootDirectory: "/", id: id, vsockCID: vsock},
		class:    kindHost,
		realtime: rt, monotonic: mono,
	}
}

// bootTime is when the host booted: the realtime clock minus time since boot.
func bootTime() (realtime, monotonic uint64) {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return 0, 0
	}
	up := time.Duration(ts.Sec)*time.Second + time.Duration(ts.Nsec)
	return uint64(time.Now().Add(-up).UnixMicro()), 0
}

// hostID is the host's machine ID, zero when /etc/machine-id has none.
func hostID(log *slog.Logger) [16]byte {
	var id [16]byte
	if b, err := os.ReadFile("/etc/machine-id"); err == nil {
		if raw, err := hex.DecodeString(strings.TrimSpace(string(b))); err == nil && len(raw) == 16 {
			copy(id[:], raw)
		}
	} else {
		log.Debug("no /etc/machine-id", "err", err)
	}
	return id
}

// HostID is the host's machine ID (.host's, which a per-user instance does
// not have), zero when unknown.
func (m *Manager) HostID() [16]byte {
	m.mu.Lock()
	host := m.machines.get(HostName)
	m.mu.Unlock()
	if host != nil {
		return host.details.id
	}
	return hostID(m.log)
}
