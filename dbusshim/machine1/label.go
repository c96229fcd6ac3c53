package machine1

import (
	"strings"

	"github.com/godbus/dbus/v5"
)

// Object paths.
const (
	managerPath    = dbus.ObjectPath("/org/freedesktop/machine1")
	machinePrefix  = "/org/freedesktop/machine1/machine/"
	machineNode    = dbus.ObjectPath("/org/freedesktop/machine1/machine")
	logControlPath = dbus.ObjectPath("/org/freedesktop/LogControl1")
	selfLabel      = "self"
)

const hexDigits = "0123456789abcdef"

// EscapeLabel is sd-bus's bus_label_escape: "" becomes "_"; ASCII letters are
// kept, and so are digits except in first position; every other byte becomes
// '_' and two lower-case hex digits. The result is a valid object path element.
func EscapeLabel(s string) string { return labelPath("", s) }

// labelPath is prefix followed by s escaped as EscapeLabel does, built in one
// allocation: ListImages and ListMachines make one per entry.
func labelPath(prefix, s string) string {
	if s == "" {
		return prefix + "_"
	}
	n := len(prefix)
	for i := 0; i < len(s); i++ {
		n++
		if !labelKeeps(s[i], i) {
			n += 2
		}
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(prefix)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if labelKeeps(c, i) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// appendLabelPath appends prefix and s escaped as EscapeLabel does to b:
// ListImages writes each entry's path from one buffer.
func appendLabelPath(b []byte, prefix, s string) []byte {
	b = append(b, prefix...)
	if s == "" {
		return append(b, '_')
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if labelKeeps(c, i) {
			b = append(b, c)
			continue
		}
		b = append(b, '_', hexDigits[c>>4], hexDigits[c&15])
	}
	return b
}

// labelKeeps reports whether byte c at position i of a label stays as it is.
func labelKeeps(c byte, i int) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
}

// UnescapeLabel reverses EscapeLabel: "_" alone is "", "_xx" with two hex
// digits is that byte, and any other '_' stays as it is (as sd-bus does).
func UnescapeLabel(s string) string {
	if s == "_" {
		return ""
	}
	if !strings.Contains(s, "_") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '_' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b.WriteByte(hi<<4 | lo)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// MachinePath is the object path of the machine called name.
func MachinePath(name string) dbus.ObjectPath {
	return dbus.ObjectPath(labelPath(machinePrefix, name))
}
