package envfile

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"
)

// lenient is ParseLenient as key/value pairs.
func lenient(data []byte) ([][2]string, error) {
	as, err := ParseLenient(data)
	var out [][2]string
	for _, a := range as {
		out = append(out, [2]string{a.Key, a.Value})
	}
	return out, err
}

func TestParseLenient(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     [][2]string
	}{
		{"plain", "ID=debian\n", [][2]string{{"ID", "debian"}}},
		{"no final newline", "ID=debian", [][2]string{{"ID", "debian"}}},
		{"comments and blanks", "# c\n  ; c2\n\n\t\nA=1\n   # B=2\n", [][2]string{{"A", "1"}}},
		{"double quotes", `NAME="Debian GNU/Linux"`, [][2]string{{"NAME", "Debian GNU/Linux"}}},
		{"single quotes", `V='12 (bookworm)'`, [][2]string{{"V", "12 (bookworm)"}}},
		{"blanks around", "  A  =   x y  \n", [][2]string{{"A", "x y"}}},
		{"quoted blanks kept", `A="  x  "  `, [][2]string{{"A", "  x  "}}},
		{"escapes in double quotes", `A="q\"b\\s\$d\` + "`" + `t"`, [][2]string{{"A", "q\"b\\s$d`t"}}},
		{"other escapes kept", `A="a\nb\x"`, [][2]string{{"A", `a\nb\x`}}},
		{"single quotes literal", `A='a\"b'`, [][2]string{{"A", `a\"b`}}},
		{"unquoted escapes", `A=a\ b\\c\"d`, [][2]string{{"A", `a b\c"d`}}},
		{"escaped trailing blank", "A=a\\ \n", [][2]string{{"A", "a "}}},
		{"continuation", "A=a\\\nb\nB=2\n", [][2]string{{"A", "ab"}, {"B", "2"}}},
		{"continuation in quotes", "A=\"a\\\nb\"\n", [][2]string{{"A", "ab"}}},
		{"multi-line quotes", "A='a\nb'\nB=\"c\nd\"\n", [][2]string{{"A", "a\nb"}, {"B", "c\nd"}}},
		{"concatenation", `A="a"'b'c`, [][2]string{{"A", "abc"}}},
		{"hash inside value", "A=b # c\n", [][2]string{{"A", "b # c"}}},
		{"empty values", "A=\nB=\"\"\nC=''\n", [][2]string{{"A", ""}, {"B", ""}, {"C", ""}}},
		{"equals in value", "A=b=c\n", [][2]string{{"A", "b=c"}}},
		{"duplicates kept", "A=1\nA=2\n", [][2]string{{"A", "1"}, {"A", "2"}}},
		{"crlf", "A=b\r\nB=\"c\"\r\n", [][2]string{{"A", "b"}, {"B", "c"}}},
		{"unterminated quote", `A="abc`, [][2]string{{"A", "abc"}}},
		{"invalid keys", "1A=x\nA-B=x\nA.B=x\n=x\nA B=x\nok_1=y\n", [][2]string{{"ok_1", "y"}}},
		{"line without equals", "garbage\nA=1\n", [][2]string{{"A", "1"}}},
		{"invalid utf-8 value", "A=\xff\nB=ü\n", [][2]string{{"B", "ü"}}},
		{"empty", "", nil},
	} {
		got, err := lenient([]byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: lenient(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
	if _, err := lenient([]byte("A=a\x00b\n")); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("NUL byte: %v, want EINVAL", err)
	}
}

// TestParseLenientLikeShell checks our parse of the host's os-release against
// what a POSIX shell makes of the same file.
func TestParseLenientLikeShell(t *testing.T) {
	data, err := os.ReadFile("/etc/os-release")
	if err != nil {
		t.Skip(err)
	}
	pairs, err := lenient(data)
	if err != nil || len(pairs) == 0 {
		t.Fatalf("ParseLenient = %v, %v", pairs, err)
	}
	out, err := exec.Command("env", "-i", "sh", "-c", "set -a; . /etc/os-release; env -0").Output()
	if err != nil {
		t.Skip(err)
	}
	shell := map[string]string{}
	for kv := range bytes.SplitSeq(out, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			shell[k] = v
		}
	}
	for _, kv := range pairs {
		if shell[kv[0]] != kv[1] {
			t.Errorf("%s: we read %q, sh reads %q", kv[0], kv[1], shell[kv[0]])
		}
	}
}

func FuzzParseLenient(f *testing.F) {
	for _, s := range []string{
		"ID=debian\n", `A="a\"b" B='c'`, "A=a\\\nb", "# x\nA='", "A=\"\\", "=\n", "A=\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pairs, err := lenient(data)
		if err != nil {
			if bytes.IndexByte(data, 0) < 0 {
				t.Fatalf("error without NUL: %v", err)
			}
			return
		}
		var b strings.Builder
		for _, kv := range pairs {
			if !validKey(kv[0]) || !utf8.ValidString(kv[1]) {
				t.Fatalf("bad pair %q", kv)
			}
			// Quoting a value the way os-release(5) says must round-trip.
			b.WriteString(kv[0] + `="`)
			for _, c := range []byte(kv[1]) {
				if strings.IndexByte("\"\\`$", c) >= 0 {
					b.WriteByte('\\')
				}
				b.WriteByte(c)
			}
			b.WriteString("\"\n")
		}
		again, err := lenient([]byte(b.String()))
		if err != nil || len(again) != len(pairs) || (len(pairs) > 0 && !reflect.DeepEqual(again, pairs)) {
			t.Fatalf("round trip of %q: %q, %v", pairs, again, err)
		}
	})
}
