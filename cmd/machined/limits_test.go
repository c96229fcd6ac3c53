package main

import (
	"strconv"
	"testing"

	"github.com/machined-go/machined/varlink"
)

func TestConnectionLimitDefaults(t *testing.T) {
	o, err := parseFlags([]string{"--runtime-dir", "/nonexistent"})
	if err != nil {
		t.Fatal(err)
	}
	if got := o.limits.MaxPendingInput; got != 64<<20 {
		t.Errorf("--max-pending-input defaults to %d, want 64 MiB", got)
	}
	if l := o.limits; l.MaxConnections != 4096 || l.MaxConnectionsPerUID != 128 || l.ReservedConnections != 256 {
		t.Errorf("defaults: %d connections, %d per uid, %d reserved; want 4096, 128, 256", l.MaxConnections, l.MaxConnectionsPerUID, l.ReservedConnections)
	}
}

func TestConnectionLimitFlagsChecked(t *testing.T) {
	for _, args := range [][]string{
		{"--max-connections", "0"},
		{"--max-connections-per-uid", "0"},
		{"--reserved-connections", "-1"},
		{"--max-connections", "10", "--reserved-connections", "10"},
		{"--max-pending-input", "0"},
		{"--max-pending-input", "33554432"}, // two maximal messages, without the read slack
	} {
		if _, err := parseFlags(append([]string{"--runtime-dir", "/x"}, args...)); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	if _, err := parseFlags([]string{"--runtime-dir", "/x", "--max-connections", "10", "--reserved-connections", "9", "--max-connections-per-uid", "1"}); err != nil {
		t.Errorf("the smallest valid limits refused: %v", err)
	}
	min := varlink.DefaultLimits().MinPendingInput()
	if _, err := parseFlags([]string{"--runtime-dir", "/x", "--max-pending-input", strconv.Itoa(min)}); err != nil {
		t.Errorf("--max-pending-input %d refused: %v", min, err)
	}
}
