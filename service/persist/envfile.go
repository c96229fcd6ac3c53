package persist

import (
	"fmt"
	"strings"

	"github.com/machined-go/machined/service/envfile"
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

// parseEnv reads a state file's assignments (envfile.Parse: any malformed line
// makes the file damaged) into a map; the last of duplicate keys wins. A value
// with a control character is refused as well: the core never stores one, so
// only damage or a forged file can hold it.
func parseEnv(data []byte) (map[string]string, error) {
	as, err := envfile.Parse(data)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(as))
	for _, a := range as {
		if strings.IndexFunc(a.Value, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			return nil, fmt.Errorf("%s: control character in value", a.Key)
		}
		out[a.Key] = a.Value
	}
	return out, nil
}
