package nsenter

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestEnvironment(t *testing.T) {
	a := Account{Name: "alice", UID: 1000, GID: 1000, Home: "/home/alice", Shell: "/bin/zsh"}
	extra := []string{"TERM=xterm-256color", "LANG=C.UTF-8", "EMPTY=", "LANG=de_DE.UTF-8", "A=b=c"}
	if err := checkEnvironment(extra); err != nil {
		t.Fatal(err)
	}
	got := environment(a, extra)
	want := []string{
		"TERM=xterm-256color", "HOME=/home/alice", "USER=alice", "LOGNAME=alice", "SHELL=/bin/zsh",
		"PATH=" + defaultPath, "LANG=de_DE.UTF-8", "EMPTY=", "A=b=c",
	}
	if !slices.Equal(got, want) {
		t.Errorf("environment:\n got %q\nwant %q", got, want)
	}
	got = environment(a, nil)
	if got[0] != "TERM=vt220" {
		t.Errorf("default TERM: %q", got[0])
	}
}

func TestEnvironmentInvalid(t *testing.T) {
	for _, extra := range [][]string{
		{"NOEQUALS"}, {"=value"}, {""}, {"A=b\x00c"},
		make([]string, maxEnvEntries+1),
		{"A=" + strings.Repeat("x", maxEnvBytes)},
	} {
		if err := checkEnvironment(extra); !errors.Is(err, ErrInvalid) {
			t.Errorf("checkEnvironment(%.40q): %v, want ErrInvalid", extra, err)
		}
	}
	// The bounds themselves pass.
	full := make([]string, maxEnvEntries)
	for i := range full {
		full[i] = "K=v"
	}
	if err := checkEnvironment(full); err != nil {
		t.Errorf("%d entries: %v", maxEnvEntries, err)
	}
	if err := checkEnvironment([]string{"A=" + strings.Repeat("x", maxEnvBytes-3)}); err != nil {
		t.Errorf("%d bytes: %v", maxEnvBytes, err)
	}
}
