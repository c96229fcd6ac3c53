package persist

import (
	"fmt"
	"strconv"
	"strings"
)

// appendQuoted appends a value so that both generations of readers get it back: a value
// of only safe characters stays bare (what 252 wrote for every value), anything
// else is double-quoted with \ escaping " \ $ and `, which systemd's env-file
// parser undoes inside double quotes. Control characters never reach us: the core
// refuses them.
func appendQuoted(b []byte, v string) []byte {
	safe := true
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("/._:@+,=-", c) >= 0) {
			safe = false
			break
		}
	}
	if safe {
		return append(b, v...)
	}
	b = append(b, '"')
	for i := 0; i < len(v); i++ {
		if strings.IndexByte("\"\\$`", v[i]) >= 0 {
			b = append(b, '\\')
		}
		b = append(b, v[i])
	}
	return append(b, '"')
}

// parseEnv reads KEY=VALUE lines. Bare values take backslash escapes, including
// the C escapes 252's cescape wrote (\NNN octal, \xHH, \n, \t); double-quoted values take
// \X as X; single-quoted values are literal. Comments and blank lines are skipped.
func parseEnv(data []byte) (map[string]string, error) {
	out := map[string]string{}
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimLeft(line, " \t")
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		eq := strings.IndexByte(line, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("line %d: no assignment", n+1)
		}
		key := strings.TrimRight(line[:eq], " \t")
		val, err := unquote(strings.TrimLeft(line[eq+1:], " \t"))
		if err == nil && strings.IndexFunc(val, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			err = fmt.Errorf("control character in value")
		}
		if err != nil {
			return nil, fmt.Errorf("line %d (%s): %w", n+1, key, err)
		}
		out[key] = val
	}
	return out, nil
}

func unquote(v string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch c {
		case '"':
			j := i + 1
			for ; j < len(v) && v[j] != '"'; j++ {
				if v[j] == '\\' && j+1 < len(v) {
					j++
				}
				b.WriteByte(v[j])
			}
			if j >= len(v) {
				return "", fmt.Errorf("unterminated double quote")
			}
			i = j
		case '\'':
			j := strings.IndexByte(v[i+1:], '\'')
			if j < 0 {
				return "", fmt.Errorf("unterminated single quote")
			}
			b.WriteString(v[i+1 : i+1+j])
			i += j + 1
		case '\\':
			if i+1 >= len(v) {
				return "", fmt.Errorf("trailing backslash")
			}
			i++
			switch v[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'x':
				if i+2 >= len(v) {
					return "", fmt.Errorf("short \\x escape")
				}
				x, err := strconv.ParseUint(v[i+1:i+3], 16, 8)
				if err != nil {
					return "", fmt.Errorf("bad \\x escape")
				}
				b.WriteByte(byte(x))
				i += 2
			case '0', '1', '2', '3':
				// cescape writes bytes outside printable ASCII as three octal
				// digits: 252 stores "é" as \303\251.
				if i+2 >= len(v) || !isOctal(v[i+1]) || !isOctal(v[i+2]) {
					return "", fmt.Errorf("bad octal escape")
				}
				b.WriteByte((v[i]-'0')<<6 | (v[i+1]-'0')<<3 | (v[i+2] - '0'))
				i += 2
			default:
				b.WriteByte(v[i])
			}
		case ' ', '\t':
			// Unquoted trailing white space is not part of the value.
			if strings.TrimRight(v[i:], " \t") == "" {
				return b.String(), nil
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
