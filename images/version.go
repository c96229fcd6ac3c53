package images

import "cmp"

// compareVersions orders version strings the way upstream's vpick does (the UAPI
// version format): '~' sorts before the end of the string, which sorts before
// '-', '^' and '.', which sort before digits and letters; numeric segments
// compare by value (leading zeros ignored) and are newer than alphabetic ones.
// It returns -1, 0 or 1.
func compareVersions(a, b string) int {
	if a == "" || b == "" {
		return cmp.Compare(len(a), len(b))
	}
	for {
		a, b = skipInvalidVersionChars(a), skipInvalidVersionChars(b)

		if first(a) == '~' || first(b) == '~' {
			if r := cmpBool(first(a) != '~', first(b) != '~'); r != 0 {
				return r
			}
			a, b = a[1:], b[1:]
		}
		if a == "" || b == "" {
			return cmp.Compare(a, b)
		}
		for _, sep := range []byte{'-', '^', '.'} {
			if first(a) == sep || first(b) == sep {
				if r := cmpBool(first(a) != sep, first(b) != sep); r != 0 {
					return r
				}
				a, b = a[1:], b[1:]
			}
		}

		var sa, sb string
		if isDigit(first(a)) || isDigit(first(b)) {
			if r := cmpBool(isDigit(first(a)), isDigit(first(b))); r != 0 {
				return r
			}
			a, b = trimZeros(a), trimZeros(b)
			sa, sb = a[:spanOf(a, isDigit)], b[:spanOf(b, isDigit)]
			if r := cmpBool(sa != "", sb != ""); r != 0 {
				return r
			}
			if r := cmp.Compare(len(sa), len(sb)); r != 0 {
				return r
			}
			if r := cmp.Compare(sa, sb); r != 0 {
				return r
			}
		} else {
			sa, sb = a[:spanOf(a, isAlpha)], b[:spanOf(b, isAlpha)]
			n := min(len(sa), len(sb))
			if r := cmp.Compare(sa[:n], sb[:n]); r != 0 {
				return r
			}
			if r := cmp.Compare(len(sa), len(sb)); r != 0 {
				return r
			}
		}
		a, b = a[len(sa):], b[len(sb):]
	}
}

// validVersion reports whether s may be the version part of a versioned image's
// file name.
func validVersion(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !validVersionChar(s[i]) {
			return false
		}
	}
	return true
}

func validVersionChar(c byte) bool {
	return isAlpha(c) || isDigit(c) || c == '~' || c == '-' || c == '^' || c == '.'
}

func skipInvalidVersionChars(s string) string {
	for s != "" && !validVersionChar(s[0]) {
		s = s[1:]
	}
	return s
}

func first(s string) byte {
	if s == "" {
		return 0
	}
	return s[0]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func spanOf(s string, f func(byte) bool) int {
	i := 0
	for i < len(s) && f(s[i]) {
		i++
	}
	return i
}

func trimZeros(s string) string {
	for s != "" && s[0] == '0' {
		s = s[1:]
	}
	return s
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	default:
		return -1
	}
}
