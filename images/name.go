package images

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxNameLen is the longest file name the kernel accepts (NAME_MAX).
const maxNameLen = 255

// ValidName reports whether name may name an image: a valid file name (non-empty,
// at most 255 bytes, no "/", not "." or ".."), valid UTF-8 without control
// characters, and not starting with ".#" (the prefix of lock and temporary files,
// which must never be taken for images).
func ValidName(name string) error {
	reason := ""
	switch {
	case name == "":
		reason = "empty"
	case len(name) > maxNameLen:
		reason = fmt.Sprintf("longer than %d bytes", maxNameLen)
	case name == "." || name == "..":
		reason = "a directory reference"
	case strings.ContainsRune(name, '/'):
		reason = "contains '/'"
	case !utf8.ValidString(name):
		reason = "not valid UTF-8"
	case hasControl(name):
		reason = "contains control characters"
	case strings.HasPrefix(name, ".#"):
		reason = "starts with '.#'"
	default:
		return nil
	}
	return fmt.Errorf("%w %q: %s", ErrInvalidName, name, reason)
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}
