package varlink

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// DuplicateKeyError: an object names the same key twice. encoding/json keeps
// the last one silently, so two readers of one message (a proxy that checks
// the first "method", a dispatcher that runs the second) could disagree.
type DuplicateKeyError struct{ Key string }

func (e *DuplicateKeyError) Error() string { return "duplicate key " + e.Key }

// forEachKey calls fn with each key of the object in data, unescaped, until fn
// returns false. data must be valid JSON (json.Unmarshal accepted it): the
// scan only tracks nesting and strings, which is what keeps it cheap on every
// message.
func forEachKey(data []byte, fn func(key []byte) bool) {
	depth := 0
	wantKey := false
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{':
			depth++
			wantKey = depth == 1
		case '[':
			depth++
		case '}', ']':
			depth--
		case ',':
			wantKey = depth == 1
		case '"':
			j, escaped := i+1, false
			for ; j < len(data) && data[j] != '"'; j++ {
				if data[j] == '\\' {
					j++
					escaped = true
				} else if data[j] >= utf8.RuneSelf {
					escaped = true // invalid UTF-8 is read as U+FFFD: decode to compare
				}
			}
			if depth == 1 && wantKey {
				key := data[i+1 : min(j, len(data))]
				if escaped {
					var k string
					json.Unmarshal(data[i:min(j+1, len(data))], &k)
					key = []byte(k)
				}
				if !fn(key) {
					return
				}
				wantKey = false
			}
			i = j
		}
	}
}

// keySet finds repeated keys: a scan while there are few, a map past that,
// so that a million keys stay linear.
type keySet struct {
	few  [][]byte
	many map[string]bool
}

// add reports whether key was already in the set.
func (s *keySet) add(key []byte) bool {
	if s.many == nil && len(s.few) == 8 {
		s.many = make(map[string]bool, 16)
		for _, k := range s.few {
			s.many[string(k)] = true
		}
	}
	if s.many != nil {
		if s.many[string(key)] {
			return true
		}
		s.many[string(key)] = true
		return false
	}
	for _, k := range s.few {
		if bytes.Equal(k, key) {
			return true
		}
	}
	s.few = append(s.few, key)
	return false
}

// duplicateKey reports the first key the object in data (valid JSON) names a
// second time.
func duplicateKey(data []byte) (dup string, found bool) {
	var set keySet
	forEachKey(data, func(key []byte) bool {
		if set.add(key) {
			dup, found = string(key), true
		}
		return !found
	})
	return dup, found
}
