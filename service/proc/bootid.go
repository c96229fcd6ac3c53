package proc

import (
	"fmt"
	"os"
	"strings"
	"sync"
)

var bootID struct {
	sync.Mutex
	v string
}

// BootID returns the kernel boot ID as 32 hex characters without dashes.
func BootID() (string, error) {
	bootID.Lock()
	defer bootID.Unlock()
	if bootID.v != "" {
		return bootID.v, nil
	}
	data, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("reading boot id: %w", err)
	}
	id := strings.ReplaceAll(strings.TrimSpace(string(data)), "-", "")
	if len(id) != 32 {
		return "", fmt.Errorf("malformed boot id %q", id)
	}
	bootID.v = id
	return id, nil
}
