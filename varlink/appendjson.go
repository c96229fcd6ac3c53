package varlink

import (
	"strconv"
	"unicode/utf8"

	"github.com/machined-go/machined/internal/bufpool"
)

// ObjectAppender is a reply's parameters that encode themselves: a front end's
// hot answer (a user record for every NSS lookup) skips encoding/json's
// reflection and its buffer. AppendJSON appends one JSON object to b, exactly
// as encoding/json would encode the value.
type ObjectAppender interface {
	AppendJSON(b []byte) []byte
}

var replyBufs = bufpool.New(512, 64<<10)

// appendReply encodes r as json.Marshal would, its parameters by p.
func appendReply(b []byte, r reply, p ObjectAppender) []byte {
	b = append(b, `{"parameters":`...)
	b = p.AppendJSON(b)
	if r.Continues {
		b = append(b, `,"continues":true`...)
	}
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = AppendJSONString(b, r.Error)
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string with encoding/json's escaping:
// the HTML characters and U+2028/U+2029 as \u escapes, invalid UTF-8 as
// U+FFFD.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendJSONUint appends n as a JSON number.
func AppendJSONUint(b []byte, n uint64) []byte { return strconv.AppendUint(b, n, 10) }
