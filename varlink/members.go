package varlink

import (
	"encoding/json"
	"errors"
	"unicode/utf8"
)

var (
	errNotObject = errors.New("not a JSON object")
	errNotArray  = errors.New("not a JSON array")
	// errStop ends a walk early without being an error for the walk's caller.
	errStop = errors.New("stop")
)

// eachMember calls fn with every member of the JSON object data, in order: its
// decoded key and its raw value. data must already be valid JSON (json.Valid):
// this walks it once without building anything, so that a message is parsed
// once, not once per layer. fn's error stops the walk and is returned.
func eachMember(data []byte, fn func(key string, value []byte) error) error {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return errNotObject
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return nil
	}
	for i < len(data) {
		kEnd := skipString(data, i)
		name, err := decodeKey(data[i:kEnd])
		if err != nil {
			return err
		}
		i = skipSpace(data, kEnd)
		i = skipSpace(data, i+1) // the ':'
		vEnd := skipValue(data, i)
		if err := fn(name, data[i:vEnd]); err != nil {
			return err
		}
		i = skipSpace(data, vEnd)
		if i >= len(data) || data[i] == '}' {
			return nil
		}
		i = skipSpace(data, i+1) // the ','
	}
	return nil
}

// eachElement calls fn with every element of the JSON array data, in order.
// Like eachMember it expects valid JSON; fn's error stops the walk, so a long
// array costs only the elements looked at.
func eachElement(data []byte, fn func(value []byte) error) error {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return errNotArray
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		return nil
	}
	for i < len(data) {
		end := skipValue(data, i)
		if err := fn(data[i:end]); err != nil {
			return err
		}
		i = skipSpace(data, end)
		if i >= len(data) || data[i] == ']' {
			return nil
		}
		i = skipSpace(data, i+1) // the ','
	}
	return nil
}

// decodeKey returns the text of a quoted JSON key. Plain ASCII, the usual
// case, is taken as it is; escapes and other bytes go through encoding/json,
// which also reads invalid UTF-8 as U+FFFD, as every other reader of the
// message does.
func decodeKey(quoted []byte) (string, error) {
	raw := quoted[1 : len(quoted)-1]
	for _, c := range raw {
		if c == '\\' || c >= utf8.RuneSelf {
			var s string
			err := json.Unmarshal(quoted, &s)
			return s, err
		}
	}
	return string(raw), nil
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

// skipString returns the index after the string starting at data[i] == '"'.
func skipString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(data)
}

// skipValue returns the index after the value starting at data[i].
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return i
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				i = skipString(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(data) { // number, true, false, null
		switch data[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}
