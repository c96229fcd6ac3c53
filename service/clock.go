package service

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// now returns CLOCK_REALTIME and CLOCK_MONOTONIC in µs, as the state file stores them.
func now() (realtime, monotonic uint64) {
	return uint64(time.Now().UnixMicro()), monotonicMicros()
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
