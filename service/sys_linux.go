package service

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/quicksys"
)

func dupCloexec(fd int) (int, error) {
	return quicksys.DupCloexec(fd)
}

// monotonicMicros is CLOCK_MONOTONIC in µs. It is read by syscall once; after
// that Go's own monotonic clock (vDSO) advances it, saving a syscall per
// registration.
func monotonicMicros() uint64 {
	base := monoBase()
	return base.micros + uint64(time.Since(base.at).Microseconds())
}

var monoBase = sync.OnceValue(func() (b struct {
	micros uint64
	at     time.Time
}) {
	var ts unix.Timespec
	b.at = time.Now()
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) == nil {
		b.micros = uint64(ts.Sec)*1e6 + uint64(ts.Nsec)/1e3
	}
	return b
})

// processStartMicros is when a process started, in µs since boot, from field 22
// of /proc/PID/stat (clock ticks; USER_HZ is 100 on every Linux ABI we run on).
func processStartMicros(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may contain spaces and parentheses: split after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/PID/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, errors.New("malformed /proc/PID/stat")
	}
	ticks, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, err
	}
	return ticks * 10_000, nil
}
