package varlink

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ActivatedFD is one socket passed by the service manager.
type ActivatedFD struct {
	Name      string // from LISTEN_FDNAMES; "unknown" when not given
	File      *os.File
	Listening bool // a listening socket, or one connection (varlinkctl exec:)
}

// ActivationFiles takes the sockets of socket activation (LISTEN_PID, LISTEN_FDS,
// LISTEN_FDNAMES) and unsets the variables so children do not inherit them.
func ActivationFiles() []ActivatedFD {
	defer func() {
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_FDNAMES")
	}()
	// Like sd_listen_fds: without LISTEN_PID naming us, fds 3… are not ours to
	// take, whatever LISTEN_FDS says.
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return nil
	}
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	var out []ActivatedFD
	for i := 0; i < n; i++ {
		fd := 3 + i
		unix.CloseOnExec(fd)
		name := "unknown"
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		acc, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		out = append(out, ActivatedFD{Name: name, File: os.NewFile(uintptr(fd), name), Listening: acc == 1})
	}
	return out
}
