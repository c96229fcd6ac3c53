package images

// ValidName reports whether name may name an image: a valid file name (non-empty,
// at most 255 bytes, no "/", not "." or ".."), valid UTF-8 without control
// characters, and not starting with ".#" (the prefix of lock and temporary files).
func ValidName(name string) error {
	return errNotImplemented
}
