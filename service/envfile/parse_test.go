package envfile

import (
	"errors"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// The C escapes of 252's state files and the shell quoting of os-release are
// one grammar: both readers see the same values.
func TestCombinedRules(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     [][2]string
	}{
		{"unquoted C escapes", `A=a\303\251\x41\tb\nc`, [][2]string{{"A", "aéA\tb\nc"}}},
		{"upper-case hex", `A=\x4A\x4a`, [][2]string{{"A", "JJ"}}},
		{"octal above 0377 is not an escape", `A=\400`, [][2]string{{"A", "400"}}},
		{"C escapes are not read in double quotes", `A="\303\x41\n"`, [][2]string{{"A", `\303\x41\n`}}},
		{"nor in single quotes", `A='\303\x41'`, [][2]string{{"A", `\303\x41`}}},
		{"mixed parts", `A=\x41"\x41"'\x41'\$`, [][2]string{{"A", `A\x41\x41$`}}},
		{"shell escapes unquoted", `A=a\ b\\c\"d\'e`, [][2]string{{"A", `a b\c"d'e`}}},
		{"continuation", "A=a\\\nb\nB=\\101\n", [][2]string{{"A", "ab"}, {"B", "A"}}},
		{"escaped trailing blank", "A=a\\x20\n", [][2]string{{"A", "a "}}},
	} {
		for parse, f := range map[string]func([]byte) ([]Assignment, error){"Parse": Parse, "ParseLenient": ParseLenient} {
			as, err := f([]byte(tc.in))
			if err != nil {
				t.Errorf("%s: %s: %v", tc.name, parse, err)
				continue
			}
			var got [][2]string
			for _, a := range as {
				got = append(got, [2]string{a.Key, a.Value})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s: %s(%q) = %q, want %q", tc.name, parse, tc.in, got, tc.want)
			}
		}
	}
}

// Parse refuses what ParseLenient reads as systemd does, naming the line (and
// the key when there is one).
func TestParseRefusesMalformedLines(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		errHas   string
		lenient  [][2]string
	}{
		{"bad hex escape", "A=\\xZZ\n", "line 1 (A): bad escape", [][2]string{{"A", "xZZ"}}},
		{"short hex escape", "A=\\x4", "line 1 (A): bad escape", [][2]string{{"A", "x4"}}},
		{"bad octal escape", "A=1\nB=\\39\n", "line 2 (B): bad escape", [][2]string{{"A", "1"}, {"B", "39"}}},
		{"short octal escape", "A=\\30", "line 1 (A): bad escape", [][2]string{{"A", "30"}}},
		{"trailing backslash", "A=a\\", "line 1 (A): trailing backslash", [][2]string{{"A", "a"}}},
		{"unterminated double quote", "A=\"abc\n", "line 1 (A): unterminated quote", [][2]string{{"A", "abc\n"}}},
		{"unterminated single quote", "A='abc", "line 1 (A): unterminated quote", [][2]string{{"A", "abc"}}},
		{"no assignment", "A=1\ngarbage\n", "line 2: no assignment", [][2]string{{"A", "1"}}},
		{"no assignment at the end", "A=1\ngarbage", "line 2: no assignment", [][2]string{{"A", "1"}}},
		{"line count after multi-line quote", "A='x\ny'\n#c\nB-C=1\n", "line 4 (B-C): invalid key", [][2]string{{"A", "x\ny"}}},
		{"empty key", "=x\n", "line 1: invalid key", nil},
		{"not UTF-8", "A=\xff\n", "line 1 (A): value is not UTF-8", nil},
		{"not UTF-8 by escape", "A=\\377\n", "line 1 (A): value is not UTF-8", nil},
		{"NUL by escape", "A=a\\000b\nB=1\n", "line 1 (A): value contains a NUL byte", [][2]string{{"B", "1"}}},
		{"not UTF-8 and a bad escape", "A=\\xZZ\\377\n", "line 1 (A): value is not UTF-8", nil},
	} {
		if _, err := Parse([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.errHas) {
			t.Errorf("%s: Parse error %v, want %q", tc.name, err, tc.errHas)
		}
		got, err := lenient([]byte(tc.in))
		if err != nil || !reflect.DeepEqual(got, tc.lenient) {
			t.Errorf("%s: ParseLenient = %q, %v, want %q", tc.name, got, err, tc.lenient)
		}
	}
	for _, f := range []func([]byte) ([]Assignment, error){Parse, ParseLenient} {
		if _, err := f([]byte("A=a\x00b\n")); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("NUL byte: %v, want EINVAL", err)
		}
	}
}
