package main

import "testing"

func TestConnectionLimitDefaults(t *testing.T) {
	o, err := parseFlags([]string{"--runtime-dir", "/nonexistent"})
	if err != nil {
		t.Fatal(err)
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
	} {
		if _, err := parseFlags(append([]string{"--runtime-dir", "/x"}, args...)); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	if _, err := parseFlags([]string{"--runtime-dir", "/x", "--max-connections", "10", "--reserved-connections", "9", "--max-connections-per-uid", "1"}); err != nil {
		t.Errorf("the smallest valid limits refused: %v", err)
	}
}
