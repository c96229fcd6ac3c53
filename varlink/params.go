package varlink

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// ParamError names the request field that was unknown, missing or mistyped; it
// becomes org.varlink.service.InvalidParameter {"parameter": Name}.
type ParamError struct{ Name string }

func (e *ParamError) Error() string { return "invalid parameter " + e.Name }

// field binds one IDL field to its destination. decode is nil for fields that
// are accepted and ignored (deprecated ones).
type Field struct {
	name     string
	required bool
	decode   func(json.RawMessage) error
}

// DecodeParams is strict where encoding/json is lax: exact, case-sensitive keys,
// unknown and duplicate keys rejected (naming the key), types checked per
// field, missing required fields reported. A missing or null "parameters"
// counts as {}. null for an optional field means "absent", as in sd-varlink.
func DecodeParams(raw *json.RawMessage, fields ...Field) error {
	var obj map[string]json.RawMessage
	if raw != nil && !isNull(*raw) {
		if err := json.Unmarshal(*raw, &obj); err != nil {
			return &ParamError{Name: "parameters"}
		}
		if key, dup := duplicateKey(*raw); dup {
			return &ParamError{Name: key}
		}
	}
	seen := make([]bool, len(fields))
	for k, v := range obj {
		i := -1
		for j := range fields {
			if fields[j].name == k {
				i = j
				break
			}
		}
		if i < 0 {
			return &ParamError{Name: k}
		}
		if isNull(v) {
			continue
		}
		seen[i] = true
		if fields[i].decode != nil {
			if err := fields[i].decode(v); err != nil {
				return &ParamError{Name: k}
			}
		}
	}
	for i, f := range fields {
		if f.required && !seen[i] {
			return &ParamError{Name: f.name}
		}
	}
	return nil
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

func StrField(name string, dst *string, required bool) Field {
	return Field{name: name, required: required, decode: func(v json.RawMessage) error {
		if len(v) == 0 || v[0] != '"' {
			return fmt.Errorf("not a string")
		}
		return json.Unmarshal(v, dst)
	}}
}

func BoolField(name string, dst *bool) Field {
	return Field{name: name, decode: func(v json.RawMessage) error {
		s := string(v)
		if s != "true" && s != "false" {
			return fmt.Errorf("not a bool")
		}
		*dst = s == "true"
		return nil
	}}
}

// IntField decodes an integer within [min, max]; set is flipped when present.
func IntField(name string, dst *int64, set *bool, required bool, min, max int64) Field {
	return Field{name: name, required: required, decode: func(v json.RawMessage) error {
		n, err := parseInt(v)
		if err != nil || n < min || n > max {
			return fmt.Errorf("out of range")
		}
		*dst = n
		if set != nil {
			*set = true
		}
		return nil
	}}
}

// parseInt takes a JSON number only: json.Number on its own would also take
// the string "12".
func parseInt(v json.RawMessage) (int64, error) {
	if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
		return 0, fmt.Errorf("not a number")
	}
	var n json.Number
	d := json.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	if err := d.Decode(&n); err != nil {
		return 0, err
	}
	if i, err := n.Int64(); err == nil {
		return i, nil
	}
	// Accept 5.0 and 1e3 as sd-json does for integral floats.
	f, err := n.Float64()
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f > math.MaxInt64 {
		return 0, fmt.Errorf("not an integer")
	}
	return int64(f), nil
}

// IntListField decodes an array of at most maxLen integers within [min, max].
func IntListField(name string, dst *[]int, min, max int64, maxLen int) Field {
	return Field{name: name, decode: func(v json.RawMessage) error {
		var out []int
		err := decodeArray(v, maxLen, func(e json.RawMessage) error {
			n, err := parseInt(e)
			if err != nil || n < min || n > max {
				return fmt.Errorf("out of range")
			}
			out = append(out, int(n))
			return nil
		})
		if err != nil {
			return err
		}
		*dst = out
		return nil
	}}
}

// StrListField decodes an array of at most maxLen strings.
func StrListField(name string, dst *[]string, maxLen int) Field {
	return Field{name: name, decode: func(v json.RawMessage) error {
		var out []string
		err := decodeArray(v, maxLen, func(e json.RawMessage) error {
			var s string
			if len(e) == 0 || e[0] != '"' || json.Unmarshal(e, &s) != nil {
				return fmt.Errorf("not a string")
			}
			out = append(out, s)
			return nil
		})
		if err != nil {
			return err
		}
		*dst = out
		return nil
	}}
}

// decodeArray hands each element of a JSON array to elem and stops at the first
// element beyond maxLen, so an oversized array (a message may be 16 MiB of
// small numbers) is refused after maxLen elements rather than decoded whole.
func decodeArray(v json.RawMessage, maxLen int, elem func(json.RawMessage) error) error {
	d := json.NewDecoder(bytes.NewReader(v))
	if t, err := d.Token(); err != nil || t != json.Delim('[') {
		return fmt.Errorf("not an array")
	}
	for n := 0; d.More(); n++ {
		if n == maxLen {
			return fmt.Errorf("more than %d elements", maxLen)
		}
		var e json.RawMessage
		if err := d.Decode(&e); err != nil {
			return err
		}
		if err := elem(e); err != nil {
			return err
		}
	}
	_, err := d.Token()
	return err
}

func IgnoredField(name string) Field { return Field{name: name} }

// processID is the ProcessId type, which clients may also send as a bare integer.
type processID struct {
	set     bool
	pid     int64
	pidfdID int64
	bootID  string
}

func processIDField(name string, dst *processID) Field {
	return Field{name: name, decode: func(v json.RawMessage) error {
		if n, err := parseInt(v); err == nil {
			if n < 0 || n > math.MaxInt32 {
				return fmt.Errorf("out of range")
			}
			*dst = processID{set: true, pid: n}
			return nil
		}
		raw := json.RawMessage(v)
		var p processID
		if err := DecodeParams(&raw,
			IntField("pid", &p.pid, nil, true, 0, math.MaxInt32),
			IntField("pidfdId", &p.pidfdID, nil, false, 0, math.MaxInt64),
			StrField("bootId", &p.bootID, false),
		); err != nil {
			return err
		}
		p.set = true
		*dst = p
		return nil
	}}
}

// parseMachineID accepts 32 hex digits or the dashed UUID form.
func parseMachineID(s string) ([16]byte, bool) {
	var id [16]byte
	if len(s) == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-' {
		s = strings.ReplaceAll(s, "-", "")
	}
	if len(s) != 32 {
		return id, false
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return id, false
	}
	copy(id[:], b)
	return id, true
}
