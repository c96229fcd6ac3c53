package proc

import (
	"fmt"
	"strings"
	"sync"
	"syscall"
)

const bootIDPath = "/proc/sys/kernel/random/boot_id"

var bootID struct {
	sync.Mutex
	id string // set once read successfully; a failure is retried next call
}

// BootID returns the kernel's boot ID as 32 lowercase hex characters without
// dashes, the form systemd uses in state files. It is read once.
func BootID() (string, error) {
	bootID.Lock()
	defer bootID.Unlock()
	if bootID.id != "" {
		return bootID.id, nil
	}
	data, err := readProcFile(bootIDPath)
	if err != nil {
		return "", fmt.Errorf("read boot id: %w", err)
	}
	id, err := parseBootID(string(data))
	if err != nil {
		return "", err
	}
	bootID.id = id
	return id, nil
}

// parseBootID turns the kernel's dashed UUID text into 32 lowercase hex digits.
func parseBootID(s string) (string, error) {
	id := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), "-", ""))
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return "", fmt.Errorf("malformed boot id %q: %w", s, syscall.EINVAL)
	}
	return id, nil
}
