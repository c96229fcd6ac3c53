package images

import (
	"errors"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"foo", true},
		{"foo.raw", true},
		{".hidden", true},
		{".host", true},
		{"with space", true},
		{"ünïcode", true},
		{strings.Repeat("a", 255), true},
		{strings.Repeat("a", 256), false},
		{"", false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"/", false},
		{"tab\there", false},
		{"nl\n", false},
		{"del\x7f", false},
		{"nul\x00", false},
		{".#lock", false},
		{".#", false},
		{"\xff\xfe", false},
	} {
		err := ValidName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidName(%q) = %v, not ErrInvalidName", tc.name, err)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1", "1", 0},
		{"1", "2", -1},
		{"1.10", "1.9", 1},
		{"1.2", "1.2.1", -1},
		{"001", "1", 0},
		{"1~rc1", "1", -1},
		{"1~rc1", "1~rc2", -1},
		{"1-1", "1.1", -1},
		{"1^1", "1", 1},
		{"1a", "1b", -1},
		{"1a", "1", 1},
		{"abc", "abd", -1},
		{"1", "a", 1},
		{"", "1", -1},
		{"2.0", "10", -1},
	} {
		if got := compareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := compareVersions(tc.b, tc.a); got != -tc.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}
