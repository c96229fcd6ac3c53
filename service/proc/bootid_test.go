package proc

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestBootID(t *testing.T) {
	id, err := BootID()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(bootIDPath)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.ReplaceAll(strings.TrimSpace(string(raw)), "-", ""); id != want {
		t.Errorf("BootID = %q, want %q", id, want)
	}
	if again, _ := BootID(); again != id {
		t.Errorf("second BootID = %q", again)
	}
}

func TestParseBootID(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"0c6e54a4-7ae5-4c2b-9f4b-7a3b1f9c1e2d\n", "0c6e54a47ae54c2b9f4b7a3b1f9c1e2d"},
		{"0C6E54A4-7AE5-4C2B-9F4B-7A3B1F9C1E2D", "0c6e54a47ae54c2b9f4b7a3b1f9c1e2d"},
		{"0c6e54a47ae54c2b9f4b7a3b1f9c1e2d", "0c6e54a47ae54c2b9f4b7a3b1f9c1e2d"},
		{"", ""},
		{"0c6e54a4-7ae5-4c2b-9f4b-7a3b1f9c1e2", ""},
		{"0c6e54a4-7ae5-4c2b-9f4b-7a3b1f9c1e2g", ""},
		{"0c6e54a4 7ae5 4c2b 9f4b 7a3b1f9c1e2d", ""},
	} {
		got, err := parseBootID(tc.in)
		if tc.want == "" {
			if !errors.Is(err, syscall.EINVAL) {
				t.Errorf("parseBootID(%q) = %q, %v; want EINVAL", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseBootID(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
