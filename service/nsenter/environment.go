package nsenter

import (
	"fmt"
	"strings"
)

// defaultPath is the PATH a program starts with, the one systemd gives the
// services it starts (with /sbin and /bin for trees whose /usr is split).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// defaultTerm is TERM when the caller names none: what systemd sets for a
// service on a terminal, which every terminal understands.
const defaultTerm = "vt220"

// Bounds of the caller's environment: far above any real use, low enough that
// a request cannot make the exec fail on the kernel's argument limits.
const (
	maxEnvEntries = 1024
	maxEnvBytes   = 128 << 10
)

// checkEnvironment checks the caller's environment: KEY=VALUE entries, within
// the bounds.
func checkEnvironment(extra []string) error {
	if len(extra) > maxEnvEntries {
		return fmt.Errorf("environment: %d entries, at most %d: %w", len(extra), maxEnvEntries, ErrInvalid)
	}
	size := 0
	for _, kv := range extra {
		size += len(kv) + 1
		key, _, ok := strings.Cut(kv, "=")
		if !ok || key == "" || strings.ContainsRune(kv, 0) {
			return fmt.Errorf("environment entry %.64q: not KEY=VALUE: %w", kv, ErrInvalid)
		}
	}
	if size > maxEnvBytes {
		return fmt.Errorf("environment: %d bytes, at most %d: %w", size, maxEnvBytes, ErrInvalid)
	}
	return nil
}

// environment builds the program's environment: TERM, HOME, USER, LOGNAME,
// SHELL and PATH for account a, then extra (checked by checkEnvironment),
// whose entries replace those of the same key; one entry per key, the last one
// given.
func environment(a Account, extra []string) []string {
	env := []string{
		"TERM=" + defaultTerm,
		"HOME=" + a.Home,
		"USER=" + a.Name,
		"LOGNAME=" + a.Name,
		"SHELL=" + a.Shell,
		"PATH=" + defaultPath,
	}
	index := make(map[string]int, len(env)+len(extra))
	for i, kv := range env {
		key, _, _ := strings.Cut(kv, "=")
		index[key] = i
	}
	for _, kv := range extra {
		key, _, _ := strings.Cut(kv, "=")
		if i, ok := index[key]; ok {
			env[i] = kv
			continue
		}
		index[key] = len(env)
		env = append(env, kv)
	}
	return env
}
