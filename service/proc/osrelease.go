package proc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

const maxOSRelease = 64 << 10

// OSRelease reads os-release from inside the process' root directory.
func OSRelease(p *PidRef) ([]string, error) {
	root, err := unix.Open(fmt.Sprintf("/proc/%d/root", p.PID), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening root of pid %d: %w", p.PID, err)
	}
	defer unix.Close(root)
	if err := p.Verify(); err != nil {
		return nil, err
	}
	return osReleaseAt(root)
}

// osReleaseAt reads os-release below rootfd, resolving all paths inside it.
func osReleaseAt(rootfd int) ([]string, error) {
	for _, name := range []string{"etc/os-release", "usr/lib/os-release"} {
		fd, err := unix.Openat2(rootfd, name, &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", name, err)
		}
		f := os.NewFile(uintptr(fd), name)
		data, err := io.ReadAll(io.LimitReader(f, maxOSRelease))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		return envToList(data)
	}
	return nil, fmt.Errorf("no os-release file: %w", syscall.ENOENT)
}

// HostOSRelease reads the host's os-release.
func HostOSRelease() ([]string, error) {
	for _, name := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		f, err := os.Open(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(io.LimitReader(f, maxOSRelease))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		return envToList(data)
	}
	return nil, fmt.Errorf("no os-release file: %w", syscall.ENOENT)
}

func envToList(data []byte) ([]string, error) {
	kv, err := ParseEnvFile(data)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(kv))
	for _, e := range kv {
		out = append(out, e[0]+"="+e[1])
	}
	return out, nil
}

func validEnvKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// ParseEnvFile parses a simple KEY=VALUE file (os-release syntax). Lines with
// invalid keys are skipped.
func ParseEnvFile(data []byte) ([][2]string, error) {
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, fmt.Errorf("env file contains NUL byte: %w", syscall.EINVAL)
	}
	var out [][2]string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if !validEnvKey(k) {
			continue
		}
		out = append(out, [2]string{k, unquote(strings.TrimSpace(v))})
	}
	return out, nil
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1]
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		in := v[1 : len(v)-1]
		var b strings.Builder
		for i := 0; i < len(in); i++ {
			if in[i] == '\\' && i+1 < len(in) {
				i++
			}
			b.WriteByte(in[i])
		}
		return b.String()
	}
	return v
}
