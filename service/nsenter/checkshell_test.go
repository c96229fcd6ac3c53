package nsenter

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestCheckShell(t *testing.T) {
	tty := os.Stdin
	ok := []Shell{
		{TTY: tty},
		{TTY: tty, Path: "/bin/sh", Args: []string{"sh", "-c", "true"}},
		{TTY: tty, Path: "/" + strings.Repeat("a", maxPath-1)},
		{TTY: tty, Args: make([]string, maxArgs)},
		{TTY: tty, Args: []string{strings.Repeat("a", maxArgBytes-1)}},
	}
	for _, sh := range ok {
		if err := checkShell(sh); err != nil {
			t.Errorf("checkShell(path %.20q, %d args): %v", sh.Path, len(sh.Args), err)
		}
	}
	bad := []Shell{
		{},
		{TTY: tty, Path: "bin/sh"},
		{TTY: tty, Path: "/bin/s\x00h"},
		{TTY: tty, Path: "/" + strings.Repeat("a", maxPath)},
		{TTY: tty, Args: []string{}},
		{TTY: tty, Args: make([]string, maxArgs+1)},
		{TTY: tty, Args: []string{strings.Repeat("a", maxArgBytes)}},
		{TTY: tty, Args: []string{"a\x00b"}},
		{TTY: tty, Env: []string{"NOEQUALS"}},
	}
	for _, sh := range bad {
		if err := checkShell(sh); !errors.Is(err, ErrInvalid) {
			t.Errorf("checkShell(path %.20q, %d args, tty %v): %v, want ErrInvalid", sh.Path, len(sh.Args), sh.TTY != nil, err)
		}
	}
}
