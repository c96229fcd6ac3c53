package service

import (
	"slices"
	"strings"
	"testing"
)

func TestShellRequestDefaults(t *testing.T) {
	sh, err := ShellRequest{}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if sh.User != "root" || sh.Path != "/bin/sh" || len(sh.Args) != 3 || sh.Args[0] != "sh" || sh.Args[1] != "-c" ||
		!strings.Contains(sh.Args[2], "getent passwd 'root'") || !strings.HasSuffix(sh.Args[2], `exec "${shell:-/bin/sh}" -l`) {
		t.Errorf("defaults: %+v", sh)
	}
	sh, err = ShellRequest{User: "1000", Path: "/bin/true"}.resolve()
	if err != nil || !slices.Equal(sh.Args, []string{"/bin/true"}) || sh.User != "1000" {
		t.Errorf("path without args: %+v %v", sh, err)
	}
	sh, err = ShellRequest{Path: "/bin/sh", Args: []string{"sh", "-c", "id"}, Env: []string{"A=b", "B=", "C=x=y", "D=multi\nline"}}.resolve()
	if err != nil || !slices.Equal(sh.Args, []string{"sh", "-c", "id"}) {
		t.Errorf("explicit args and environment: %+v %v", sh, err)
	}
	// A user name is a word of the script only as one quoted word.
	sh, _ = ShellRequest{User: "o'brien$(x)"}.resolve()
	if !strings.Contains(sh.Args[2], `getent passwd 'o'\''brien$(x)'`) {
		t.Errorf("user not quoted: %s", sh.Args[2])
	}
}

// Each rule refuses with the parameter it is about.
func TestShellRequestRefusals(t *testing.T) {
	many := make([]string, MaxOpenEnvironment+1)
	for i := range many {
		many[i] = "K" + strings.Repeat("x", i%7) + "=v"
	}
	for _, tc := range []struct {
		req   ShellRequest
		field string
	}{
		{ShellRequest{User: "a:b"}, "user"},
		{ShellRequest{User: "a b"}, "user"},
		{ShellRequest{User: "a/b"}, "user"},
		{ShellRequest{User: "-rf"}, "user"},
		{ShellRequest{User: ".."}, "user"},
		{ShellRequest{User: "bad\x01"}, "user"},
		{ShellRequest{User: strings.Repeat("u", maxUserNameLen+1)}, "user"},
		{ShellRequest{User: "65535"}, "user"},
		{ShellRequest{User: "4294967295"}, "user"},
		{ShellRequest{User: "99999999999"}, "user"},
		{ShellRequest{Path: "bin/sh"}, "path"},
		{ShellRequest{Path: "/bin/\x00sh"}, "path"},
		{ShellRequest{Path: "/" + strings.Repeat("p", maxPathLen)}, "path"},
		{ShellRequest{Path: "/bin/sh", Args: []string{"sh", "a\x00b"}}, "args"},
		{ShellRequest{Path: "/bin/sh", Args: make([]string, MaxOpenArgs+1)}, "args"},
		{ShellRequest{Env: []string{"NOEQUALS"}}, "environment"},
		{ShellRequest{Env: []string{"=v"}}, "environment"},
		{ShellRequest{Env: []string{"1A=v"}}, "environment"},
		{ShellRequest{Env: []string{"A-B=v"}}, "environment"},
		{ShellRequest{Env: []string{"A=tab\there"}}, "environment"},
		{ShellRequest{Env: []string{"A=\xff"}}, "environment"},
		{ShellRequest{Env: []string{"A=1", "A=2"}}, "environment"},
		{ShellRequest{Env: many}, "environment"},
	} {
		_, err := tc.req.resolve()
		ia, ok := AsInvalidArg(err)
		if !ok || ia.Field != tc.field {
			t.Errorf("%+.60v: %v, want invalid %s", tc.req, err, tc.field)
		}
	}
	// At the bounds, accepted.
	env := make([]string, MaxOpenEnvironment)
	for i := range env {
		env[i] = "K" + strings.Repeat("x", i) + "=v"
	}
	if _, err := (ShellRequest{Env: env, User: strings.Repeat("u", maxUserNameLen), Path: "/bin/sh", Args: make([]string, MaxOpenArgs)}).resolve(); err != nil {
		t.Errorf("at the bounds: %v", err)
	}
}
