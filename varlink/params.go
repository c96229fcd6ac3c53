package varlink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ParamError names the request field that was unknown, missing or mistyped; it
// becomes org.varlink.service.InvalidParameter {"parameter": Name}.
type ParamError struct{ Name string }

func (e *ParamError) Error() string { return "invalid parameter " + e.Name }

// field binds one IDL field to its destination. The common kinds (string,
// integer, bool, string list) hold their destination in the Field itself, so
// that building the fields of a call allocates nothing: a closure capturing
// its destination would be one allocation per field per call. decode serves
// the other kinds; a Field of neither is accepted and ignored (deprecated
// ones).
type Field struct {
	name     string
	required bool
	kind     fieldKind
	str      *string
	num      *int64
	flag     *bool // BoolField's destination, IntField's "set"
	strs     *[]string
	min, max int64
	maxLen   int
	decode   func(json.RawMessage) error
}

type fieldKind uint8

const (
	kindIgnored fieldKind = iota
	kindFunc
	kindStr
	kindInt
	kindBool
	kindStrList
)

// run decodes v (valid JSON, not null) into the field's destination.
func (f *Field) run(v json.RawMessage) error {
	switch f.kind {
	case kindStr:
		return decodeStr(v, f.str)
	case kindInt:
		return decodeInt(v, f.num, f.flag, f.min, f.max)
	case kindBool:
		return decodeBool(v, f.flag)
	case kindStrList:
		return decodeStrList(v, f.strs, f.maxLen)
	case kindFunc:
		return f.decode(v)
	}
	return anyJSON(v)
}

// DecodeParams is strict where encoding/json is lax: exact, case-sensitive keys,
// unknown and duplicate keys rejected (naming the key), types checked per
// field, missing required fields reported. A missing or null "parameters"
// counts as {}. null for an optional field means "absent", as in sd-varlink.
// The members are walked in place, never copied into a map, and every value is
// checked by the field that reads it: a structure that is not JSON is
// ErrMalformed (io.systemd.Protocol), a value that is not what its field takes
// a ParamError naming the field.
func DecodeParams(raw *json.RawMessage, fields ...Field) error {
	if raw == nil || isNull(*raw) {
		return checkRequired(fields, nil)
	}
	// A call names a handful of fields: their bookkeeping fits on the stack.
	var presentBuf, seenBuf [16]bool
	present, seen := presentBuf[:0], seenBuf[:0]
	if len(fields) > len(presentBuf) {
		present, seen = make([]bool, 0, len(fields)), make([]bool, 0, len(fields))
	}
	present, seen = present[:len(fields)], seen[:len(fields)]
	err := eachMember(*raw, func(k, v []byte) error {
		i := -1
		for j := range fields {
			if fields[j].name == string(k) {
				i = j
				break
			}
		}
		if i < 0 || present[i] {
			return &ParamError{Name: string(k)}
		}
		present[i] = true
		if isNull(v) {
			return nil
		}
		seen[i] = true
		if err := fields[i].run(v); err != nil {
			if errors.Is(err, ErrMalformed) {
				return err
			}
			return &ParamError{Name: string(k)}
		}
		return nil
	})
	if err != nil {
		return paramsError(err)
	}
	return checkRequired(fields, seen)
}

// paramsError is what a failed walk of the parameters reports. It is a
// function of its own so that the error's holder is allocated only on failure.
func paramsError(err error) error {
	var pe *ParamError
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, ErrMalformed):
		return ErrMalformed
	}
	return &ParamError{Name: "parameters"}
}

// anyJSON accepts what an ignored field holds, as long as it is JSON.
func anyJSON(v json.RawMessage) error {
	if !json.Valid(v) {
		return ErrMalformed
	}
	return nil
}

// checkRequired names the first required field not seen.
func checkRequired(fields []Field, seen []bool) error {
	for i, f := range fields {
		if f.required && (seen == nil || !seen[i]) {
			// A copy of the name: letting the error hold the field's own
			// string would, to the compiler, let it hold the destinations the
			// fields point to, and move every caller's destinations to the heap.
			return &ParamError{Name: strings.Clone(f.name)}
		}
	}
	return nil
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

func StrField(name string, dst *string, required bool) Field {
	return Field{name: name, required: required, kind: kindStr, str: dst}
}

var (
	errNotString = errors.New("not a string")
	errNotBool   = errors.New("not a bool")
	errRange     = errors.New("out of range")
)

func decodeStr(v json.RawMessage, dst *string) error {
	if len(v) == 0 || v[0] != '"' {
		return errNotString
	}
	if s, ok := plainString(v); ok {
		*dst = s
		return nil
	}
	// Through a string of its own: handing dst to encoding/json would move
	// every caller's destination to the heap, on the plain path too.
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return err
	}
	*dst = s
	return nil
}

// plainString decodes a JSON string that needs no unescaping, which is every
// name, path and service a client sends in practice, without encoding/json's
// scan and reflection; ok is false for anything else (escapes, control
// characters, invalid UTF-8, not a lone string), which the caller hands to
// encoding/json.
func plainString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	in := v[1 : len(v)-1]
	for _, b := range in {
		if b < 0x20 || b == '"' || b == '\\' || b >= utf8.RuneSelf {
			if b >= utf8.RuneSelf && utf8.Valid(in) && !hasSpecial(in) {
				return string(in), true
			}
			return "", false
		}
	}
	return string(in), true
}

func hasSpecial(in []byte) bool {
	for _, b := range in {
		if b < 0x20 || b == '"' || b == '\\' {
			return true
		}
	}
	return false
}

func BoolField(name string, dst *bool) Field {
	return Field{name: name, kind: kindBool, flag: dst}
}

func decodeBool(v json.RawMessage, dst *bool) error {
	s := string(v)
	if s != "true" && s != "false" {
		return errNotBool
	}
	*dst = s == "true"
	return nil
}

// IntField decodes an integer within [min, max]; set is flipped when present.
func IntField(name string, dst *int64, set *bool, required bool, min, max int64) Field {
	return Field{name: name, required: required, kind: kindInt, num: dst, flag: set, min: min, max: max}
}

func decodeInt(v json.RawMessage, dst *int64, set *bool, min, max int64) error {
	n, err := ParseInt(v)
	if err != nil || n < min || n > max {
		return errRange
	}
	*dst = n
	if set != nil {
		*set = true
	}
	return nil
}

// ParseInt reads an integer and takes a JSON number only: json.Number on its own
// would also take the string "12". Integral floats (5.0, 1e3) count, as in sd-json.
func ParseInt(v json.RawMessage) (int64, error) {
	if !jsonNumber(v) {
		return 0, fmt.Errorf("not a number")
	}
	// v is a JSON number (the message is valid JSON and v starts like one).
	if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
		return i, nil
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f > math.MaxInt64 {
		return 0, fmt.Errorf("not an integer")
	}
	return int64(f), nil
}

// jsonNumber reports whether v is a number as JSON spells it:
// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func jsonNumber(v []byte) bool {
	i := 0
	digits := func() bool {
		start := i
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(v) && v[i] == '-' {
		i++
	}
	switch {
	case i < len(v) && v[i] == '0':
		i++
	case !digits():
		return false
	}
	if i < len(v) && v[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return i == len(v)
}

// IntListField decodes an array of at most maxLen integers within [min, max].
func IntListField(name string, dst *[]int, min, max int64, maxLen int) Field {
	return Field{name: name, kind: kindFunc, decode: func(v json.RawMessage) error {
		var out []int
		err := decodeArray(v, maxLen, func(e json.RawMessage) error {
			n, err := ParseInt(e)
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
	return Field{name: name, kind: kindStrList, strs: dst, maxLen: maxLen}
}

func decodeStrList(v json.RawMessage, dst *[]string, maxLen int) error {
	var out []string
	err := decodeArray(v, maxLen, func(e json.RawMessage) error {
		var s string
		if len(e) == 0 || e[0] != '"' || json.Unmarshal(e, &s) != nil {
			return errNotString
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return err
	}
	*dst = out
	return nil
}

// decodeArray hands each element of a JSON array to elem and stops at the first
// element beyond maxLen, so an oversized array (a message may be 16 MiB of
// small numbers) is refused after maxLen elements rather than decoded whole.
func decodeArray(v json.RawMessage, maxLen int, elem func(json.RawMessage) error) error {
	n := 0
	return eachElement(v, func(e []byte) error {
		if n == maxLen {
			return fmt.Errorf("more than %d elements", maxLen)
		}
		n++
		return elem(e)
	})
}

// IgnoredField accepts a field and drops it (deprecated ones).
func IgnoredField(name string) Field { return Field{name: name} }

// FuncField is an optional field of a type of its own: decode gets the value
// (valid JSON, never null) and any error it returns names the field.
func FuncField(name string, decode func(json.RawMessage) error) Field {
	return Field{name: name, kind: kindFunc, decode: decode}
}

// ListField decodes an array of at most maxLen elements, each by elem (which
// gets valid JSON); the first bad element or the one past maxLen names the field.
func ListField(name string, maxLen int, elem func(json.RawMessage) error) Field {
	return Field{name: name, kind: kindFunc, decode: func(v json.RawMessage) error {
		return decodeArray(v, maxLen, elem)
	}}
}
