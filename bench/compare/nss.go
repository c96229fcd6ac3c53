package main

import (
	"embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The C helpers are compiled with the host's gcc when the harness starts.
//
//go:embed csrc/leaderfarm.c csrc/nsslookup.c csrc/echoserver.c
var csrc embed.FS

// buildHelper compiles csrc/<name>.c into dir and returns the binary's path.
func buildHelper(dir, name string) (string, error) {
	src, err := csrc.ReadFile("csrc/" + name + ".c")
	if err != nil {
		return "", err
	}
	c := filepath.Join(dir, name+".c")
	bin := filepath.Join(dir, name)
	if err := os.WriteFile(c, src, 0o644); err != nil {
		return "", err
	}
	out, err := exec.Command("gcc", "-O2", "-Wall", "-o", bin, c).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("gcc %s: %v\n%s(gcc and libc6-dev come with make deps)", name, err, out)
	}
	return bin, nil
}

// nssRate runs the lookup helper for dur and returns lookups per second and
// the lookups made. mode is "uid" (getpwuid) or "name" (getpwnam).
func nssRate(bin, mode string, dur time.Duration, keys []string) (float64, int, error) {
	args := append([]string{mode, strconv.FormatInt(dur.Milliseconds(), 10)}, keys...)
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		return 0, 0, fmt.Errorf("nsslookup: %w", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		return 0, 0, fmt.Errorf("nsslookup: unexpected output %q", out)
	}
	calls, _ := strconv.ParseFloat(f[0], 64)
	misses, _ := strconv.ParseFloat(f[1], 64)
	ns, _ := strconv.ParseFloat(f[2], 64)
	if misses > 0 {
		return 0, 0, fmt.Errorf("%.0f of %.0f NSS lookups found nothing", misses, calls)
	}
	if ns <= 0 {
		return 0, 0, fmt.Errorf("nsslookup: no time measured")
	}
	return calls / (ns / 1e9), int(calls), nil
}
