package proc

import (
	"os"
	"testing"
)

func TestParseStartTicks(t *testing.T) {
	for _, tc := range []struct {
		line string
		want uint64
		ok   bool
	}{
		{"42 (sleep) S 1 42 42 0 -1 4194560 96 0 0 0 0 0 0 0 20 0 1 0 123456 5000 100", 123456, true},
		{"42 (a ) b) (c) S 1 42 42 0 -1 4194560 96 0 0 0 0 0 0 0 20 0 1 0 77 5000 100", 77, true},
		{"42 (short) S 1 2 3", 0, false},
		{"no parenthesis here", 0, false},
	} {
		got, err := parseStartTicks([]byte(tc.line))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%q: %d, %v; want %d, ok %v", tc.line, got, err, tc.want, tc.ok)
		}
	}
}

func TestStartTicksOfSelf(t *testing.T) {
	ticks, err := StartTicks(os.Getpid())
	if err != nil || ticks == 0 {
		t.Fatalf("StartTicks(self) = %d, %v", ticks, err)
	}
	if us, _ := StartMicros(os.Getpid()); us != ticks*10_000 {
		t.Errorf("StartMicros = %d, want %d", us, ticks*10_000)
	}
	if _, err := StartTicks(1 << 30); err == nil {
		t.Error("a start time for a process that does not exist")
	}
}
