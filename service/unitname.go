package service

import "strings"

// MachineScope returns the scope unit machined creates for a machine:
// "machine-<escaped name>.scope". libvirt computes the same name on its own, so the
// escaping must match upstream's unit_name_escape byte for byte.
func MachineScope(name string) string {
	return "machine-" + escapeUnitName(name) + ".scope"
}

// escapeUnitName escapes like systemd: '/' becomes '-'; a leading '.', and any
// byte outside [A-Za-z0-9:_.] (so '-' and '\' too), becomes \xHH in lower-case hex.
func escapeUnitName(s string) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c == '.' && i == 0, !unitNameSafe(c):
			b.WriteString(`\x`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func unitNameSafe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '_' || c == '.'
}
