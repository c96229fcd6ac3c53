package service

import (
	"strings"
	"testing"
)

// The paths of copies and bind mounts: absolute, bounded, a file name last;
// the D-Bus rule also normalized.
func TestValidOperationPath(t *testing.T) {
	long := "/" + strings.Repeat("a/", 2046)
	long += strings.Repeat("b", maxPathLen-len(long)) // exactly maxPathLen bytes
	for _, tc := range []struct {
		p                  string
		varlink, normalize bool
	}{
		{"/etc/passwd", true, true},
		{"/etc/", true, true},
		{"/a", true, true},
		{"etc/passwd", false, false},
		{"", false, false},
		{"/", false, false},
		{"//", false, false},
		{"/etc/..", false, false},
		{"/etc/.", false, false},
		{"/etc/../passwd", true, false},
		{"/etc/./passwd", true, false},
		{"/etc//passwd", true, false},
		{"/" + strings.Repeat("n", 255), true, true},
		{"/" + strings.Repeat("n", 256), false, false},
		{long, true, true},
		{long + "c", false, false},
		{"/a\x00b", false, false},
	} {
		if got := validOperationPath(tc.p, false); got != tc.varlink {
			t.Errorf("validOperationPath(%.40q (%d bytes), varlink) = %v", tc.p, len(tc.p), got)
		}
		if got := validOperationPath(tc.p, true); got != tc.normalize {
			t.Errorf("validOperationPath(%.40q (%d bytes), normalized) = %v", tc.p, len(tc.p), got)
		}
	}
	if len(long) != maxPathLen {
		t.Fatalf("long path has %d bytes", len(long))
	}
}

// Destination defaults to the source; each path is named in its error.
func TestCheckOperationPaths(t *testing.T) {
	if err := checkOperationPaths("/a", "/a", true); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ src, dst, field string }{
		{"a", "/a", "source"},
		{"/a", "a", "destination"},
	} {
		ia, ok := AsInvalidArg(checkOperationPaths(tc.src, tc.dst, true))
		if !ok || ia.Field != tc.field || !strings.Contains(ia.Reason, "absolute and normalized") {
			t.Errorf("checkOperationPaths(%q, %q) = %v, want %s", tc.src, tc.dst, ia, tc.field)
		}
	}
}
