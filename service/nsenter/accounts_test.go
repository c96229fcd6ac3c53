package nsenter

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

const passwdFile = `# a comment line
root:x:0:0:root:/root:/bin/bash
+nisuser::::::
-nisexcluded::::::
broken line without colons
short:x:1:1
baduid:x:notanumber:1::/:/bin/sh
minusone:x:4294967295:1::/:/bin/sh
toobig:x:4294967296:1::/:/bin/sh
alice:x:1000:1000:Alice:/home/alice:/bin/zsh
alice:x:1002:1002:second alice:/home/alice2:/bin/sh
nohome:x:1001:100:::
relative:x:1003:100::home/rel:bin/sh
:x:1004:100::/:/bin/sh
`

func TestLookupAccount(t *testing.T) {
	for _, c := range []struct {
		user string
		want Account
	}{
		{"", Account{"root", 0, 0, "/root", "/bin/bash"}},
		{"root", Account{"root", 0, 0, "/root", "/bin/bash"}},
		{"0", Account{"root", 0, 0, "/root", "/bin/bash"}},
		// The first entry wins, by name and by uid.
		{"alice", Account{"alice", 1000, 1000, "/home/alice", "/bin/zsh"}},
		{"1000", Account{"alice", 1000, 1000, "/home/alice", "/bin/zsh"}},
		{"1002", Account{"alice", 1002, 1002, "/home/alice2", "/bin/sh"}},
		// Empty home and shell, relative home and shell: / and /bin/sh.
		{"nohome", Account{"nohome", 1001, 100, "/", "/bin/sh"}},
		{"relative", Account{"relative", 1003, 100, "/", "/bin/sh"}},
		// A number is a uid, with leading zeros too.
		{"01000", Account{"alice", 1000, 1000, "/home/alice", "/bin/zsh"}},
	} {
		got, err := lookupAccount([]byte(passwdFile), c.user)
		if err != nil || got != c.want {
			t.Errorf("lookupAccount(%q) = %+v, %v; want %+v", c.user, got, err, c.want)
		}
	}
}

func TestLookupAccountMissing(t *testing.T) {
	for _, user := range []string{
		"bob", "4242",
		// Lines that are not entries match nothing.
		"nisuser", "+nisuser", "-nisexcluded", "nisexcluded", "short", "baduid", "broken line without colons", "# a comment line",
		// -1 and ids beyond 32 bits are no uid; neither is the entry holding one.
		"4294967295", "minusone", "4294967296", "toobig", "-1",
		// Names no entry can hold.
		"al:ice", "alice\n", "ali\x00ce", strings.Repeat("a", maxUserName+1),
	} {
		if got, err := lookupAccount([]byte(passwdFile), user); !errors.Is(err, ErrNoSuchUser) {
			t.Errorf("lookupAccount(%q) = %+v, %v; want ErrNoSuchUser", user, got, err)
		}
	}
}

func TestLookupAccountNameBound(t *testing.T) {
	name := strings.Repeat("a", maxUserName)
	passwd := fmt.Sprintf("%s:x:7:7::/:/bin/sh\n%sa:x:8:8::/:/bin/sh\n", name, name)
	if a, err := lookupAccount([]byte(passwd), name); err != nil || a.UID != 7 {
		t.Errorf("name of %d bytes: %+v, %v", maxUserName, a, err)
	}
	if _, err := lookupAccount([]byte(passwd), name+"a"); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("name of %d bytes: %v, want ErrNoSuchUser", maxUserName+1, err)
	}
}

// A tree without account files, or whose passwd lacks root, still has root.
func TestLookupAccountRootWithoutEntry(t *testing.T) {
	for _, passwd := range []string{"", "alice:x:1000:1000::/home/alice:/bin/sh\n"} {
		for _, user := range []string{"", "root", "0"} {
			if got, err := lookupAccount([]byte(passwd), user); err != nil || got != rootAccount {
				t.Errorf("passwd %q, user %q: %+v, %v; want %+v", passwd, user, got, err, rootAccount)
			}
		}
		if _, err := lookupAccount([]byte(passwd), "daemon"); !errors.Is(err, ErrNoSuchUser) {
			t.Errorf("passwd %q: daemon found: %v", passwd, err)
		}
	}
}

func TestGroupsOf(t *testing.T) {
	group := `root:x:0:
wheel:x:10:root,alice
audio:x:29: bob , alice
video:x:44:alicex,xalice
dup:x:10:alice
primary:x:1000:alice
broken:x:12
badgid:x:x:alice
+nis:x:13:alice
#comment:x:14:alice
`
	got := groupsOf([]byte(group), Account{Name: "alice", GID: 1000})
	if want := []uint32{1000, 10, 29}; !slices.Equal(got, want) {
		t.Errorf("groups of alice = %v, want %v", got, want)
	}
	if got := groupsOf(nil, Account{Name: "alice", GID: 5}); !slices.Equal(got, []uint32{5}) {
		t.Errorf("no group file: %v, want [5]", got)
	}
}

// No process can hold more than NGROUPS_MAX groups: the list stops there.
func TestGroupsOfBound(t *testing.T) {
	var b strings.Builder
	for gid := 1; gid <= maxGroups+10; gid++ {
		fmt.Fprintf(&b, "g%d:x:%d:alice\n", gid, gid)
	}
	got := groupsOf([]byte(b.String()), Account{Name: "alice", GID: 0})
	if len(got) != maxGroups || got[0] != 0 || got[maxGroups-1] != maxGroups-1 {
		t.Errorf("%d groups (first %d, last %d), want %d", len(got), got[0], got[len(got)-1], maxGroups)
	}
}
