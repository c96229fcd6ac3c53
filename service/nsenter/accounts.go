package nsenter

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// maxAccountFile bounds what is read of the container's /etc/passwd and
// /etc/group: the container writes them.
const maxAccountFile = 16 << 20

// maxGroups is the kernel's NGROUPS_MAX: no process can hold more
// supplementary groups.
const maxGroups = 65536

// maxUserName bounds a user name asked for; longer ones cannot be in an
// account file a sane system reads, and are not searched for.
const maxUserName = 256

// Account is one user of the container, as its /etc/passwd says.
type Account struct {
	Name  string
	UID   uint32
	GID   uint32
	Home  string // "/" when the entry has none
	Shell string // "/bin/sh" when the entry has none or a relative one
}

// rootAccount stands in for root when the container has no entry for it (a
// bare tree without /etc/passwd): root exists whatever the files say.
var rootAccount = Account{Name: "root", UID: 0, GID: 0, Home: "/root", Shell: "/bin/sh"}

// lookupAccount finds user in the contents of a passwd file: by name, or by
// uid when user is a number; "" is root. The first matching entry wins, as
// with getpwnam. A user that is not there wraps ErrNoSuchUser.
func lookupAccount(passwd []byte, user string) (Account, error) {
	if user == "" {
		user = "root"
	}
	if len(user) > maxUserName || strings.ContainsAny(user, ":\n\x00") {
		return Account{}, fmt.Errorf("user %.64q: %w", user, ErrNoSuchUser)
	}
	uid, byUID := parseID(user)
	for line := range bytes.SplitSeq(passwd, []byte("\n")) {
		a, ok := parsePasswdLine(line)
		if !ok {
			continue
		}
		if (byUID && a.UID == uid) || (!byUID && a.Name == user) {
			return a, nil
		}
	}
	if user == "root" || (byUID && uid == 0) {
		return rootAccount, nil
	}
	return Account{}, fmt.Errorf("user %q: %w", user, ErrNoSuchUser)
}

// parsePasswdLine parses "name:password:uid:gid:gecos:home:shell". Comments,
// NIS "+"/"-" lines and lines that do not have that form are skipped.
func parsePasswdLine(line []byte) (Account, bool) {
	f := strings.Split(string(line), ":")
	if len(f) != 7 || f[0] == "" || f[0][0] == '#' || f[0][0] == '+' || f[0][0] == '-' {
		return Account{}, false
	}
	uid, ok := parseID(f[2])
	if !ok {
		return Account{}, false
	}
	gid, ok := parseID(f[3])
	if !ok {
		return Account{}, false
	}
	a := Account{Name: f[0], UID: uid, GID: gid, Home: f[5], Shell: f[6]}
	if !strings.HasPrefix(a.Home, "/") {
		a.Home = "/"
	}
	if !strings.HasPrefix(a.Shell, "/") {
		a.Shell = "/bin/sh"
	}
	return a, true
}

// parseID parses a uid or gid: decimal, 32 bits, not the invalid id
// 4294967295 (-1).
func parseID(s string) (uint32, bool) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	id, err := strconv.ParseUint(s, 10, 32)
	if err != nil || id == 1<<32-1 {
		return 0, false
	}
	return uint32(id), true
}

// groupsOf lists the groups a of the contents of a group file: its primary
// group first, then every group naming it as a member, each once, at most
// maxGroups in all (as initgroups does).
func groupsOf(group []byte, a Account) []uint32 {
	out := []uint32{a.GID}
	seen := map[uint32]bool{a.GID: true}
	for line := range bytes.SplitSeq(group, []byte("\n")) {
		if len(out) == maxGroups {
			break
		}
		gid, members, ok := parseGroupLine(line)
		if !ok || !hasMember(members, a.Name) {
			continue
		}
		if !seen[gid] {
			seen[gid] = true
			out = append(out, gid)
		}
	}
	return out
}

// parseGroupLine parses "name:password:gid:member,member,...".
func parseGroupLine(line []byte) (gid uint32, members string, ok bool) {
	f := strings.Split(string(line), ":")
	if len(f) != 4 || f[0] == "" || f[0][0] == '#' || f[0][0] == '+' || f[0][0] == '-' {
		return 0, "", false
	}
	gid, ok = parseID(f[2])
	return gid, f[3], ok
}

func hasMember(members, name string) bool {
	for m := range strings.SplitSeq(members, ",") {
		if strings.TrimSpace(m) == name {
			return true
		}
	}
	return false
}
