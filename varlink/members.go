package varlink

import (
	"encoding/json"
	"errors"
	"unicode/utf8"
)

var (
	errNotObject = errors.New("not a JSON object")
	errNotArray  = errors.New("not a JSON array")
	// ErrMalformed: the message is not JSON where it was read. It is
	// io.systemd.Protocol, as a message json.Valid refuses is.
	ErrMalformed = errors.New("malformed JSON")
)

// maxDepth bounds how deeply a message's arrays and objects may nest; sd-json
// refuses deep nesting too, and the walk keeps its stack in a fixed array.
const maxDepth = 256

// A message is walked once, lazily: the walks below check the structure of
// every object and array they go through (braces, keys, colons, commas) and
// find where each value ends, but leave a value's content to whoever reads it
// (the strict parameter decoder, json.Unmarshal for a string, ParseInt for a
// number), or to json.Valid where a value is accepted unread. So every byte of
// a message that is answered without an error has been checked, and a message
// refused at its first bad parameter costs no more than the bytes up to it:
// a 16 MiB list is not validated to its end to be refused at element 257.

// eachMember calls fn with every member of the JSON object data, in order: its
// decoded key and its raw value. The key is valid only during the call: a plain
// one is a slice of data, so that walking a message allocates nothing. data must hold the object and nothing else
// but white space. fn's error stops the walk and is returned; a structure that
// is not JSON is ErrMalformed, and a value that is not an object errNotObject.
func eachMember(data []byte, fn func(key, value []byte) error) error {
	end, err := walkObject(data, skipSpace(data, 0), fn)
	if err != nil {
		return err
	}
	if skipSpace(data, end) != len(data) {
		return ErrMalformed
	}
	return nil
}

// walkObject walks the object starting at data[i] and returns the index after
// its closing brace.
func walkObject(data []byte, i int, fn func(key, value []byte) error) (int, error) {
	if i >= len(data) || data[i] != '{' {
		return 0, errNotObject
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return 0, ErrMalformed
		}
		kEnd, ok := skipString(data, i)
		if !ok {
			return 0, ErrMalformed
		}
		name, err := decodeKey(data[i:kEnd])
		if err != nil {
			return 0, ErrMalformed
		}
		i = skipSpace(data, kEnd)
		if i >= len(data) || data[i] != ':' {
			return 0, ErrMalformed
		}
		i = skipSpace(data, i+1)
		vEnd, ok := skipValue(data, i)
		if !ok {
			return 0, ErrMalformed
		}
		if err := fn(name, data[i:vEnd]); err != nil {
			return 0, err
		}
		i = skipSpace(data, vEnd)
		switch {
		case i >= len(data):
			return 0, ErrMalformed
		case data[i] == '}':
			return i + 1, nil
		case data[i] != ',':
			return 0, ErrMalformed
		}
		i = skipSpace(data, i+1)
	}
}

// eachElement calls fn with every element of the JSON array data, in order,
// under the same rules as eachMember; fn's error stops the walk, so a long
// array costs only the elements looked at.
func eachElement(data []byte, fn func(value []byte) error) error {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return errNotArray
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		if skipSpace(data, i+1) != len(data) {
			return ErrMalformed
		}
		return nil
	}
	for {
		end, ok := skipValue(data, i)
		if !ok {
			return ErrMalformed
		}
		if err := fn(data[i:end]); err != nil {
			return err
		}
		i = skipSpace(data, end)
		switch {
		case i >= len(data):
			return ErrMalformed
		case data[i] == ']':
			if skipSpace(data, i+1) != len(data) {
				return ErrMalformed
			}
			return nil
		case data[i] != ',':
			return ErrMalformed
		}
		i = skipSpace(data, i+1)
	}
}

// decodeKey returns the text of a quoted JSON key. Plain printable ASCII, the
// usual case, is taken as it is; escapes and other bytes go through
// encoding/json, which checks them and reads invalid UTF-8 as U+FFFD, as every
// other reader of the message does.
func decodeKey(quoted []byte) ([]byte, error) {
	raw := quoted[1 : len(quoted)-1]
	for _, c := range raw {
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			var s string
			err := json.Unmarshal(quoted, &s)
			return []byte(s), err
		}
	}
	return raw, nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index after the string starting at data[i] == '"';
// false when it does not end.
func skipString(data []byte, i int) (int, bool) {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return 0, false
}

// skipValue returns the index after the value starting at data[i]: a string
// to its closing quote, an object or array to its matching bracket (brackets
// must pair, at most maxDepth deep), anything else to the next delimiter.
func skipValue(data []byte, i int) (int, bool) {
	if i >= len(data) {
		return 0, false
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		var open [maxDepth]byte
		depth := 0
		for i < len(data) {
			switch c := data[i]; c {
			case '"':
				end, ok := skipString(data, i)
				if !ok {
					return 0, false
				}
				i = end
				continue
			case '{', '[':
				if depth == maxDepth {
					return 0, false
				}
				open[depth] = c
				depth++
			case '}', ']':
				if depth == 0 || open[depth-1] != c-2 { // '{'+2 == '}', '['+2 == ']'
					return 0, false
				}
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
			i++
		}
		return 0, false
	case ',', ':', '}', ']':
		return 0, false
	}
	start := i
	for i < len(data) {
		switch data[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i, i > start
		}
		i++
	}
	return i, i > start
}
