package persist

// ValidMachineName is the hostname rule: 1..64 bytes of ASCII letters, digits,
// '-' and '.', dot-separated non-empty labels that neither start nor end with '-'.
// Underscores are refused, although upstream's man page claims otherwise: its
// code (hostname_is_valid without flags) refuses them. Registration, lookups and
// state-file readers all apply this one rule.
func ValidMachineName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	labelStart := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if labelStart || s[i-1] == '-' {
				return false
			}
			labelStart = true
			continue
		case c == '-':
			if labelStart {
				return false
			}
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		default:
			return false
		}
		labelStart = false
	}
	return !labelStart && s[len(s)-1] != '-'
}
