package proc

import (
	"bytes"
	"fmt"
	"strconv"
	"syscall"
)

// StartTicks is when a process started, in clock ticks since boot: field 22 of
// /proc/PID/stat. polkit identifies a unix-process subject by it, and a restore
// compares it with a machine's registration time to spot a recycled PID.
func StartTicks(pid int) (uint64, error) {
	var ticks uint64
	var perr error
	err := scanProcFile("/proc/"+strconv.Itoa(pid)+"/stat", func(b []byte) { ticks, perr = parseStartTicks(b) })
	if err != nil {
		return 0, err
	}
	return ticks, perr
}

// StartMicros is StartTicks in µs since boot. USER_HZ is 100 on every Linux ABI
// this daemon runs on.
func StartMicros(pid int) (uint64, error) {
	ticks, err := StartTicks(pid)
	return ticks * 10_000, err
}

// parseStartTicks reads field 22 of a /proc/PID/stat line. The command name
// (field 2) may hold spaces and parentheses, so fields count from the last ')'.
func parseStartTicks(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/PID/stat: %w", syscall.EINVAL)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("malformed /proc/PID/stat: %w", syscall.EINVAL)
	}
	return strconv.ParseUint(string(f[19]), 10, 64)
}
