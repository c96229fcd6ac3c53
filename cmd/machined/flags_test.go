package main

import "testing"

// Where the sockets go by default: everything under the runtime directory;
// a per-user instance under $XDG_RUNTIME_DIR, without userdb or resolver
// hook sockets unless asked for.
func TestSocketDirDefaults(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/4242")
	for _, tc := range []struct {
		args                     []string
		runtime, userdb, hookDir string
	}{
		{nil, "/run", "/run/systemd/userdb", "/run/systemd/resolve.hook"},
		{[]string{"--runtime-dir", "/r"}, "/r", "/r/systemd/userdb", "/r/systemd/resolve.hook"},
		{[]string{"--resolve-hook-dir", "none"}, "/run", "/run/systemd/userdb", "none"},
		{[]string{"--resolve-hook-dir", "/h"}, "/run", "/run/systemd/userdb", "/h"},
		{[]string{"--user"}, "/run/user/4242", "", ""},
		{[]string{"--user", "--resolve-hook-dir", "/h"}, "/run/user/4242", "", "/h"},
	} {
		o, err := parseFlags(tc.args)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if o.runtimeDir != tc.runtime || o.userdbDir != tc.userdb || o.hookDir != tc.hookDir {
			t.Errorf("%v: runtime %q userdb %q hook %q, want %q %q %q", tc.args, o.runtimeDir, o.userdbDir, o.hookDir, tc.runtime, tc.userdb, tc.hookDir)
		}
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	if _, err := parseFlags([]string{"--user"}); err == nil {
		t.Error("--user without $XDG_RUNTIME_DIR accepted")
	}
}
