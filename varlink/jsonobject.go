package varlink

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// member is one key and its undecoded value, in the order the object has them.
type member struct {
	key string
	val json.RawMessage
}

// DuplicateKeyError: an object names the same key twice. encoding/json keeps
// the last one silently, so two readers of one message (a proxy that checks
// the first "method", a dispatcher that runs the second) could disagree.
type DuplicateKeyError struct{ Key string }

func (e *DuplicateKeyError) Error() string { return "duplicate key " + e.Key }

var errNotObject = errors.New("not a JSON object")

// objectMembers splits one JSON object into its members, refusing duplicate
// keys and anything after the closing brace.
func objectMembers(raw []byte) ([]member, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return nil, errNotObject
	}
	var out []member
	var seen map[string]bool // past a few keys, so that a million keys stay linear
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errNotObject
		}
		var val json.RawMessage
		if err := d.Decode(&val); err != nil {
			return nil, err
		}
		if seen == nil && len(out) == 8 {
			seen = make(map[string]bool)
			for _, m := range out {
				seen[m.key] = true
			}
		}
		dup := seen[key]
		for i := 0; seen == nil && i < len(out) && !dup; i++ {
			dup = out[i].key == key
		}
		if dup {
			return nil, &DuplicateKeyError{Key: key}
		}
		if seen != nil {
			seen[key] = true
		}
		out = append(out, member{key, val})
	}
	if tok, err := d.Token(); err != nil || tok != json.Delim('}') {
		return nil, errNotObject
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errNotObject
	}
	return out, nil
}
