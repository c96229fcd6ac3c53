package service

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// ShellRequest is what a client asks a shell in a machine to run: User ""
// means root, Path "" the user's login shell (through defaultShellPath), Args
// empty the path alone.
type ShellRequest struct {
	User string
	Path string
	Args []string
	Env  []string
}

// defaultShellPath runs the user's shell, looked up inside the machine,
// falling back to /bin/sh, as a login shell: the same program upstream runs
// when no path is given.
const defaultShellPath = "/bin/sh"

func defaultShellArgs(user string) []string {
	return []string{"sh", "-c", "shell=$(getent passwd " + shellQuote(user) +
		" 2>/dev/null | { IFS=: read _ _ _ _ _ _ x; echo \"$x\"; })\nexec \"${shell:-/bin/sh}\" -l"}
}

// shellQuote quotes s for sh. A valid user name needs no quoting, but the
// name is the client's, and this text is a script.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// resolve checks the request as upstream does and fills in its defaults.
func (r ShellRequest) resolve() (ShellRequest, error) {
	if r.User == "" {
		r.User = "root"
	}
	if !validShellUser(r.User) {
		return r, invalidArg("user", "invalid user name '%s'", r.User)
	}
	if len(r.Args) > MaxOpenArgs {
		return r, invalidArg("args", "more than %d arguments", MaxOpenArgs)
	}
	if len(r.Env) > MaxOpenEnvironment {
		return r, invalidArg("environment", "more than %d environment variables", MaxOpenEnvironment)
	}
	if r.Path == "" {
		r.Path, r.Args = defaultShellPath, defaultShellArgs(r.User)
	} else {
		if !strings.HasPrefix(r.Path, "/") || len(r.Path) > maxPathLen || strings.IndexByte(r.Path, 0) >= 0 {
			return r, invalidArg("path", "specified path '%s' is not absolute", r.Path)
		}
		if len(r.Args) == 0 {
			r.Args = []string{r.Path}
		}
	}
	for _, a := range r.Args {
		if strings.IndexByte(a, 0) >= 0 || !utf8.ValidString(a) {
			return r, invalidArg("args", "invalid argument")
		}
	}
	if !validEnvironment(r.Env) {
		return r, invalidArg("environment", "invalid environment assignments")
	}
	return r, nil
}

// maxUserNameLen is the longest login name the C library accepts
// (LOGIN_NAME_MAX less its NUL).
const maxUserNameLen = 255

// validShellUser accepts a numeric uid or a user name by the relaxed rule
// systemd applies to names it did not make itself: anything printable that
// cannot be mistaken for a path, a list or a uid, and does not start like an
// option.
func validShellUser(s string) bool {
	if s == "" || len(s) > maxUserNameLen || !utf8.ValidString(s) {
		return false
	}
	if allDigits(s) {
		uid, err := strconv.ParseUint(s, 10, 32)
		return err == nil && ValidID(uint32(uid))
	}
	if s == "." || s == ".." || s[0] == '-' || s[0] == '+' || s[0] == '~' {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == ' ' || r == ':' || r == '/' || r == ',' {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// validEnvironment accepts KEY=VALUE entries as systemd does: a shell
// variable name, a value of UTF-8 without control characters but newline, each
// name once.
func validEnvironment(env []string) bool {
	seen := make(map[string]bool, len(env))
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !validEnvName(k) || seen[k] || !utf8.ValidString(v) {
			return false
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < 0x20 && c != '\n' || c == 0x7f {
				return false
			}
		}
		seen[k] = true
	}
	return true
}

func validEnvName(k string) bool {
	if k == "" || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
