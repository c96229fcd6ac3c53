package busconn

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/godbus/dbus/v5"
)

// This file encodes reply and error messages without godbus. godbus v5.2.4's
// encoder calls binary.Write per value, allocates every padding and every
// string, buffers each array separately and validates object paths with
// strings.Split; a 501-entry ListMachines reply cost it ~400 µs. Values are
// laid out exactly as godbus would lay them out (same signature, same bytes),
// except that map entries are sorted so the output is deterministic.

// outMessage is a reply, error or signal we encode ourselves.
type outMessage struct {
	Type        byte   // TypeMethodReturn, TypeError or TypeSignal (constants in header.go)
	Flags       byte   // usually 0
	Serial      uint32 // must be non-zero
	ReplySerial uint32 // non-zero; replies and errors only
	Destination string // header field 6, omitted when ""
	ErrorName   string // header field 4, TypeError only (required there)
	// Path, Interface and Member name a signal (header fields 1-3); signals only.
	Path      dbus.ObjectPath
	Interface string
	Member    string
	Body      []any
}

// errUnencodable reports a body value appendMessage does not encode (unix fds,
// or anything godbus would refuse); the caller falls back to godbus.
var errUnencodable = errors.New("dbus: body value not encodable without godbus")

// Limits of the D-Bus specification. maxDepth is godbus's: it refuses values
// nested more than 64 containers deep (variants included), as dbus-daemon does.
const (
	maxArray     = 1 << 26
	maxSignature = 255
	maxDepth     = 64
	maxSigNest   = 32 // arrays, structs and dict entries, each
)

// flagsKnown are the flags godbus lets a message carry.
const flagsKnown = byte(dbus.FlagNoReplyExpected | dbus.FlagNoAutoStart | dbus.FlagAllowInteractiveAuthorization)

var (
	variantType     = reflect.TypeFor[dbus.Variant]()
	signatureType   = reflect.TypeFor[dbus.Signature]()
	objectPathType  = reflect.TypeFor[dbus.ObjectPath]()
	unixFDType      = reflect.TypeFor[dbus.UnixFD]()
	unixFDIndexType = reflect.TypeFor[dbus.UnixFDIndex]()
)

var zeros [8]byte

// appendMessage appends the little-endian ('l') wire form of m to b. On error
// b comes back with its old length. Errors other than errUnencodable mean m is
// invalid (a string that is not UTF-8, a bad object path or name, a limit
// exceeded): dbus-daemon would disconnect us for sending it, and godbus
// refuses nearly all of these too, so falling back to it would not help.
func appendMessage(b []byte, m *outMessage) ([]byte, error) {
	e := encoder{b: b, base: len(b)}
	if err := e.message(m); err != nil {
		return b, err
	}
	return e.b, nil
}

// encoder appends to b; base is where the message starts in b, since the
// wire format aligns relative to the message start.
type encoder struct {
	b    []byte
	base int
}

func (e *encoder) message(m *outMessage) error {
	if err := checkHeader(m); err != nil {
		return err
	}
	e.b = append(e.b, 'l', m.Type, m.Flags, 1, 0, 0, 0, 0) // body length set below
	e.b = binary.LittleEndian.AppendUint32(e.b, m.Serial)
	e.b = append(e.b, 0, 0, 0, 0) // header fields length set below
	fields := len(e.b)

	if m.Type == TypeSignal {
		e.b = append(e.b, fieldPath, 1, 'o', 0)
		e.counted(string(m.Path)) // checkHeader validated the three
		e.pad(8)
		e.b = append(e.b, fieldInterface, 1, 's', 0)
		e.counted(m.Interface)
		e.pad(8)
		e.b = append(e.b, fieldMember, 1, 's', 0)
		e.counted(m.Member)
	} else {
		e.b = append(e.b, fieldReplySerial, 1, 'u', 0)
		e.b = binary.LittleEndian.AppendUint32(e.b, m.ReplySerial)
	}
	if m.Destination != "" {
		e.pad(8)
		e.b = append(e.b, fieldDestination, 1, 's', 0)
		e.counted(m.Destination) // checkHeader validated both names
	}
	if m.Type == TypeError {
		e.pad(8)
		e.b = append(e.b, fieldErrorName, 1, 's', 0)
		e.counted(m.ErrorName)
	}
	if len(m.Body) > 0 {
		e.pad(8)
		e.b = append(e.b, fieldSignature, 1, 'g', 0, 0)
		at := len(e.b) - 1
		for _, v := range m.Body {
			s, err := sigOf(v)
			if err != nil {
				return err
			}
			e.b = append(e.b, s...)
		}
		n := len(e.b) - at - 1
		if n > maxSignature {
			return dbus.FormatError("body signature longer than 255")
		}
		e.b[at] = byte(n)
		e.b = append(e.b, 0)
	}
	binary.LittleEndian.PutUint32(e.b[fields-4:], uint32(len(e.b)-fields))
	e.pad(8)

	body := len(e.b)
	for _, v := range m.Body {
		if err := e.value(v, 0); err != nil {
			return err
		}
	}
	if len(e.b)-e.base > maxMessage {
		return dbus.InvalidMessageError("message is too long")
	}
	binary.LittleEndian.PutUint32(e.b[e.base+4:], uint32(len(e.b)-body))
	return nil
}

// checkHeader refuses what would make dbus-daemon disconnect us.
func checkHeader(m *outMessage) error {
	if m.Type == TypeSignal {
		switch {
		case !validPath(string(m.Path)):
			return dbus.InvalidMessageError("invalid path name")
		case !validDotted(m.Interface, false, false):
			return dbus.InvalidMessageError("invalid interface name")
		case !validMember(m.Member):
			return dbus.InvalidMessageError("invalid member name")
		case m.ReplySerial != 0:
			return dbus.InvalidMessageError("reply serial on a signal")
		}
	} else if m.Path != "" || m.Interface != "" || m.Member != "" {
		return dbus.InvalidMessageError("path, interface or member on a reply")
	}
	switch {
	case m.Type != TypeMethodReturn && m.Type != TypeError && m.Type != TypeSignal:
		return dbus.InvalidMessageError("not a reply, error or signal type")
	case m.Flags&^flagsKnown != 0:
		return dbus.InvalidMessageError("invalid flags")
	case m.Serial == 0 || (m.ReplySerial == 0 && m.Type != TypeSignal):
		return dbus.InvalidMessageError("zero serial")
	case m.Destination != "" && !validBusName(m.Destination):
		return dbus.InvalidMessageError("invalid destination")
	case m.Type == TypeError && !validDotted(m.ErrorName, false, false):
		return dbus.InvalidMessageError("invalid error name")
	case m.Type != TypeError && m.ErrorName != "":
		return dbus.InvalidMessageError("error name on a method return")
	}
	return nil
}

func (e *encoder) pad(n int) {
	if p := (e.base - len(e.b)) & (n - 1); p > 0 {
		e.b = append(e.b, zeros[:p]...)
	}
}

func (e *encoder) u16(x uint16) {
	e.pad(2)
	e.b = binary.LittleEndian.AppendUint16(e.b, x)
}

func (e *encoder) u32(x uint32) {
	e.pad(4)
	e.b = binary.LittleEndian.AppendUint32(e.b, x)
}

func (e *encoder) u64(x uint64) {
	e.pad(8)
	e.b = binary.LittleEndian.AppendUint64(e.b, x)
}

func (e *encoder) bool(x bool) {
	if x {
		e.u32(1)
	} else {
		e.u32(0)
	}
}

// str writes a string the way godbus checks it: UTF-8 without NUL.
func (e *encoder) str(s string) error {
	if !plainASCII(s) {
		if len(s) > maxMessage {
			return dbus.InvalidMessageError("message is too long")
		}
		if !utf8.ValidString(s) {
			return dbus.FormatError("input has a not-utf8 char in string")
		}
		if strings.IndexByte(s, 0) >= 0 {
			return dbus.FormatError("input has a null char('\\000') in string")
		}
	}
	e.counted(s)
	return nil
}

var errInvalidPath = dbus.FormatError("invalid object path")

func (e *encoder) path(p string) error {
	if !validPath(p) {
		return errInvalidPath
	}
	e.counted(p)
	return nil
}

// counted writes a string's padding, length, bytes and NUL after a single
// capacity check.
func (e *encoder) counted(s string) { counted(e, s) }

// counted is encoder.counted for a string or its bytes.
func counted[S string | []byte](e *encoder, s S) {
	n := len(e.b)
	p := (e.base - n) & 3
	need := p + 4 + len(s) + 1
	if cap(e.b)-n < need {
		e.b = slices.Grow(e.b, need)
	}
	b := e.b[n : n+need]
	b[0], b[1], b[2] = 0, 0, 0 // need ≥ 5: the padding and any of the length's bytes
	binary.LittleEndian.PutUint32(b[p:], uint32(len(s)))
	copy(b[p+4:], s)
	b[len(b)-1] = 0
	e.b = e.b[:n+need]
}

// plainASCII reports, eight bytes at a time, that s is short, ASCII and free
// of NUL: valid as it is. Names and paths in replies nearly always are.
func plainASCII(s string) bool {
	if len(s) > 4096 {
		return false
	}
	if len(s) < 8 {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c == 0 || c >= 0x80 {
				return false
			}
		}
		return true
	}
	for i := 0; i+8 < len(s); i += 8 {
		if !plainWord(s[i : i+8]) {
			return false
		}
	}
	return plainWord(s[len(s)-8:]) // may overlap the last word checked
}

// plainWord checks 8 bytes: none ≥ 0x80, none 0 (which borrows in x-ones).
func plainWord(w string) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	x := word(w)
	return (x|(x-ones))&highs == 0
}

// sig writes a signature known to be valid.
func (e *encoder) sig(s string) {
	e.b = append(e.b, byte(len(s)))
	e.b = append(e.b, s...)
	e.b = append(e.b, 0)
}

// signature writes a dbus.Signature value. godbus never builds an invalid one
// except by concatenating past 255 bytes, but it does not check.
func (e *encoder) signature(s string) error {
	if !validSignature(s) {
		return dbus.FormatError("invalid signature")
	}
	e.sig(s)
	return nil
}

// array writes the length placeholder and the padding to the first element,
// which the specification requires even when there is none.
func (e *encoder) array(align int) (at, start int) {
	e.pad(4)
	at = len(e.b)
	e.b = append(e.b, 0, 0, 0, 0)
	e.pad(align)
	return at, len(e.b)
}

func (e *encoder) endArray(at, start int) error {
	n := len(e.b) - start
	if n > maxArray {
		return dbus.FormatError("input exceeds array size limitation")
	}
	binary.LittleEndian.PutUint32(e.b[at:], uint32(n))
	return nil
}

// deeper is the error godbus gives for elements nested beyond maxDepth; an
// empty container has no elements and passes, as in godbus.
func deeper(depth, n int) error {
	if n > 0 && depth > maxDepth {
		return errUnencodable
	}
	return nil
}

// value writes v at depth containers deep. The types replies usually carry
// are switched on directly; the rest goes through reflect.
func (e *encoder) value(v any, depth int) error {
	if depth > maxDepth {
		return errUnencodable
	}
	switch v := v.(type) {
	case bool:
		e.bool(v)
	case byte:
		e.b = append(e.b, v)
	case int16:
		e.u16(uint16(v))
	case uint16:
		e.u16(v)
	case int32:
		e.u32(uint32(v))
	case int:
		e.u32(uint32(int32(v))) // godbus truncates int to 'i'
	case uint32:
		e.u32(v)
	case uint:
		e.u32(uint32(v))
	case int64:
		e.u64(uint64(v))
	case uint64:
		e.u64(v)
	case float64:
		e.u64(math.Float64bits(v))
	case string:
		return e.str(v)
	case dbus.ObjectPath:
		return e.path(string(v))
	case dbus.Signature:
		return e.signature(v.String())
	case dbus.Variant:
		return e.variant(v, depth)
	case []byte:
		if err := deeper(depth+1, len(v)); err != nil {
			return err
		}
		if len(v) > maxArray {
			return dbus.FormatError("input exceeds array size limitation")
		}
		at, start := e.array(1)
		e.b = append(e.b, v...)
		return e.endArray(at, start)
	case []string:
		if err := deeper(depth+1, len(v)); err != nil {
			return err
		}
		at, start := e.array(4)
		for _, s := range v {
			if err := e.str(s); err != nil {
				return err
			}
		}
		return e.endArray(at, start)
	case []dbus.ObjectPath:
		if err := deeper(depth+1, len(v)); err != nil {
			return err
		}
		at, start := e.array(4)
		for _, p := range v {
			if err := e.path(string(p)); err != nil {
				return err
			}
		}
		return e.endArray(at, start)
	case []any:
		at, start := e.array(1)
		for _, x := range v {
			if err := e.slot(x, depth+1); err != nil {
				return err
			}
		}
		return e.endArray(at, start)
	case map[string]dbus.Variant:
		return stringMap(e, v, depth, func(x dbus.Variant) error { return e.variant(x, depth+2) })
	case map[string]any:
		return stringMap(e, v, depth, func(x any) error { return e.slot(x, depth+2) })
	case map[string]string:
		return stringMap(e, v, depth, e.str)
	case nil:
		return errUnencodable
	case Appender:
		// The Writer holds a copy, so that e itself stays off the heap
		// for every other message.
		w := &Writer{e: *e}
		err := v.AppendDBus(w)
		e.b = w.e.b
		return err
	default:
		return e.reflectValue(reflect.ValueOf(v), depth)
	}
	return nil
}

// stringMap writes an a{s?} with its keys sorted.
func stringMap[V any](e *encoder, m map[string]V, depth int, val func(V) error) error {
	if err := deeper(depth+2, len(m)); err != nil {
		return err
	}
	var stack [32]string
	keys := stack[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	at, start := e.array(8)
	for _, k := range keys {
		e.pad(8)
		if err := e.str(k); err != nil {
			return err
		}
		if err := val(m[k]); err != nil {
			return err
		}
	}
	return e.endArray(at, start)
}

// variant writes a dbus.Variant. godbus writes the variant's signature and
// then encodes the value by its Go type, so a value that does not match the
// signature (a struct decoded by godbus as []any, say) would go out corrupt;
// that is refused here instead.
func (e *encoder) variant(v dbus.Variant, depth int) error {
	x := v.Value()
	s, err := sigOf(x)
	if err != nil {
		return err
	}
	if v.Signature().String() != s {
		return dbus.FormatError(fmt.Sprintf("variant signature %q does not match its %T value", v.Signature().String(), x))
	}
	e.sig(s)
	return e.value(x, depth+1)
}

// slot writes what an interface-typed element, field or map value holds.
// godbus wraps it in a variant, even when it already is a dbus.Variant.
func (e *encoder) slot(x any, depth int) error {
	if depth > maxDepth {
		return errUnencodable
	}
	s, err := sigOf(x)
	if err != nil {
		return err
	}
	e.sig(s)
	return e.value(x, depth+1)
}

// reflectValue writes the values value does not switch on, as godbus's encoder
// does by Kind.
func (e *encoder) reflectValue(v reflect.Value, depth int) error {
	if depth > maxDepth {
		return errUnencodable
	}
	t := v.Type()
	switch t {
	case variantType:
		if v.CanAddr() { // avoids copying the Variant to the heap
			return e.variant(*v.Addr().Interface().(*dbus.Variant), depth)
		}
		return e.variant(v.Interface().(dbus.Variant), depth)
	case signatureType:
		return e.signature(v.Field(0).String())
	case objectPathType:
		return e.path(v.String())
	case unixFDType, unixFDIndexType:
		return errUnencodable
	}
	switch t.Kind() {
	case reflect.Bool:
		e.bool(v.Bool())
	case reflect.Uint8:
		e.b = append(e.b, byte(v.Uint()))
	case reflect.Int16:
		e.u16(uint16(v.Int()))
	case reflect.Uint16:
		e.u16(uint16(v.Uint()))
	case reflect.Int, reflect.Int32:
		e.u32(uint32(int32(v.Int())))
	case reflect.Uint, reflect.Uint32:
		e.u32(uint32(v.Uint()))
	case reflect.Int64:
		e.u64(uint64(v.Int()))
	case reflect.Uint64:
		e.u64(v.Uint())
	case reflect.Float64:
		e.u64(math.Float64bits(v.Float()))
	case reflect.String:
		return e.str(v.String())
	case reflect.Pointer:
		if v.IsNil() { // godbus panics on it
			return errUnencodable
		}
		return e.reflectValue(v.Elem(), depth)
	case reflect.Interface:
		if v.IsNil() {
			return errUnencodable
		}
		return e.slot(v.Interface(), depth)
	case reflect.Slice, reflect.Array:
		return e.reflectArray(v, depth)
	case reflect.Struct:
		return e.reflectStruct(v, typeOf(t), depth)
	case reflect.Map:
		return e.reflectMap(v, depth)
	default:
		return errUnencodable
	}
	return nil
}

func (e *encoder) reflectArray(v reflect.Value, depth int) error {
	info := typeOf(v.Type())
	if info.err != nil {
		return info.err
	}
	n := v.Len()
	if err := deeper(depth+1, n); err != nil {
		return err
	}
	if v.Kind() == reflect.Slice && info.sig == "ay" {
		if n > maxArray {
			return dbus.FormatError("input exceeds array size limitation")
		}
		at, start := e.array(1)
		e.b = append(e.b, v.Bytes()...)
		return e.endArray(at, start)
	}
	at, start := e.array(sigAlign(info.sig[1]))
	if elem := v.Type().Elem(); elem.Kind() == reflect.Struct && elem != variantType && elem != signatureType {
		ei := typeOf(elem) // once for all elements
		for i := range n {
			if err := e.reflectStruct(v.Index(i), ei, depth+1); err != nil {
				return err
			}
		}
	} else {
		for i := range n {
			if err := e.reflectValue(v.Index(i), depth+1); err != nil {
				return err
			}
		}
	}
	return e.endArray(at, start)
}

func (e *encoder) reflectStruct(v reflect.Value, info *typeInfo, depth int) error {
	if depth > maxDepth {
		return errUnencodable
	}
	if info.err != nil {
		return info.err
	}
	if len(info.fields) > 0 && depth+1 > maxDepth { // the string cases below skip the check
		return errUnencodable
	}
	e.pad(8)
	for _, f := range info.fields {
		fv := v.Field(f.index)
		var err error
		switch f.kind {
		case fieldIsString:
			err = e.str(fv.String())
		case fieldIsPath:
			err = e.path(fv.String())
		case fieldIsBool:
			e.bool(fv.Bool())
		case fieldIsUint64:
			e.u64(fv.Uint())
		default:
			err = e.reflectValue(fv, depth+1)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (e *encoder) reflectMap(v reflect.Value, depth int) error {
	info := typeOf(v.Type())
	if info.err != nil {
		return info.err
	}
	type entry struct{ k, v reflect.Value }
	entries := make([]entry, 0, v.Len())
	for it := v.MapRange(); it.Next(); {
		entries = append(entries, entry{it.Key(), it.Value()})
	}
	if err := deeper(depth+2, len(entries)); err != nil {
		return err
	}
	slices.SortFunc(entries, func(a, b entry) int { return compareKeys(a.k, b.k) })
	at, start := e.array(8)
	for _, en := range entries {
		e.pad(8)
		if err := e.reflectValue(en.k, depth+2); err != nil {
			return err
		}
		if err := e.reflectValue(en.v, depth+2); err != nil {
			return err
		}
	}
	return e.endArray(at, start)
}

// compareKeys orders keys of the kinds godbus accepts as dict keys.
func compareKeys(a, b reflect.Value) int {
	switch a.Kind() {
	case reflect.String:
		return strings.Compare(a.String(), b.String())
	case reflect.Int, reflect.Int16, reflect.Int32, reflect.Int64:
		return cmp.Compare(a.Int(), b.Int())
	case reflect.Float64:
		return cmp.Compare(a.Float(), b.Float())
	}
	return cmp.Compare(a.Uint(), b.Uint())
}

// sigAlign is the alignment of the type a signature starts with.
func sigAlign(c byte) int {
	switch c {
	case 'n', 'q':
		return 2
	case 'b', 'i', 'u', 's', 'o', 'a', 'h':
		return 4
	case 'x', 't', 'd', '(', '{':
		return 8
	}
	return 1 // y, g, v
}

// sigOf is the signature godbus's SignatureOf gives v, or errUnencodable.
func sigOf(v any) (string, error) {
	switch v.(type) {
	case bool:
		return "b", nil
	case byte:
		return "y", nil
	case int16:
		return "n", nil
	case uint16:
		return "q", nil
	case int32, int:
		return "i", nil
	case uint32, uint:
		return "u", nil
	case int64:
		return "x", nil
	case uint64:
		return "t", nil
	case float64:
		return "d", nil
	case string:
		return "s", nil
	case dbus.ObjectPath:
		return "o", nil
	case dbus.Signature:
		return "g", nil
	case dbus.Variant:
		return "v", nil
	case []byte:
		return "ay", nil
	case []string:
		return "as", nil
	case []dbus.ObjectPath:
		return "ao", nil
	case []any:
		return "av", nil
	case map[string]dbus.Variant, map[string]any:
		return "a{sv}", nil
	case map[string]string:
		return "a{ss}", nil
	case nil:
		return "", errUnencodable
	case Appender:
		if s := v.(Appender).DBusSignature(); validSignature(s) {
			return s, nil
		}
		return "", dbus.FormatError("invalid signature")
	}
	info := typeOf(reflect.TypeOf(v))
	return info.sig, info.err
}

// typeInfo is what the reflect path needs of a type, worked out once.
type typeInfo struct {
	sig    string
	err    error // errUnencodable: godbus refuses the type, or it holds fds
	fields []structField
}

// structField is a field godbus encodes: exported and not tagged dbus:"-".
type structField struct {
	index int
	kind  byte // fieldIsString, fieldIsPath, fieldIsBool, fieldIsUint64 or 0
}

// Struct fields of these kinds skip the generic reflect switch.
const (
	fieldIsString = 1 + iota
	fieldIsPath
	fieldIsBool
	fieldIsUint64
)

var typeCache sync.Map // reflect.Type → *typeInfo

func typeOf(t reflect.Type) *typeInfo {
	if info, ok := typeCache.Load(t); ok {
		return info.(*typeInfo)
	}
	info, _ := typeCache.LoadOrStore(t, newTypeInfo(t))
	return info.(*typeInfo)
}

func newTypeInfo(t reflect.Type) *typeInfo {
	sig, ok := godbusSignature(t)
	if !ok || strings.IndexByte(sig, 'h') >= 0 || !validSignature(sig) {
		return &typeInfo{err: errUnencodable}
	}
	info := &typeInfo{sig: sig}
	if t.Kind() == reflect.Struct {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.PkgPath != "" || f.Tag.Get("dbus") == "-" {
				continue
			}
			sf := structField{index: i}
			switch {
			case f.Type == objectPathType:
				sf.kind = fieldIsPath
			case f.Type.Kind() == reflect.String:
				sf.kind = fieldIsString
			case f.Type.Kind() == reflect.Bool:
				sf.kind = fieldIsBool
			case f.Type.Kind() == reflect.Uint64:
				sf.kind = fieldIsUint64
			}
			info.fields = append(info.fields, sf)
		}
	}
	return info
}

// godbusSignature asks godbus, which panics on types it cannot encode.
func godbusSignature(t reflect.Type) (sig string, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return dbus.SignatureOfType(t).String(), true
}

// validSignature reports whether s is a sequence of complete types within the
// specification's length and nesting limits.
func validSignature(s string) bool {
	if len(s) > maxSignature {
		return false
	}
	for s != "" {
		var ok bool
		if s, ok = sigNext(s, 0, 0, 0); !ok {
			return false
		}
	}
	return true
}

// sigNext consumes one complete type from the start of s.
func sigNext(s string, arrays, structs, dicts int) (string, bool) {
	if s == "" || arrays > maxSigNest || structs > maxSigNest || dicts > maxSigNest {
		return "", false
	}
	switch c := s[0]; {
	case basicSig(c) || c == 'v':
		return s[1:], true
	case c == 'a' && len(s) > 1 && s[1] == '{':
		if len(s) < 3 || !basicSig(s[2]) || arrays+1 > maxSigNest || dicts+1 > maxSigNest {
			return "", false
		}
		rest, ok := sigNext(s[3:], arrays+1, structs, dicts+1)
		if !ok || rest == "" || rest[0] != '}' {
			return "", false
		}
		return rest[1:], true
	case c == 'a':
		return sigNext(s[1:], arrays+1, structs, dicts)
	case c == '(':
		rest := s[1:]
		if rest == "" || rest[0] == ')' {
			return "", false
		}
		for rest != "" && rest[0] != ')' {
			var ok bool
			if rest, ok = sigNext(rest, arrays, structs+1, dicts); !ok {
				return "", false
			}
		}
		if rest == "" {
			return "", false
		}
		return rest[1:], true
	}
	return "", false
}

func basicSig(c byte) bool {
	return strings.IndexByte("ybnqiuxtdsogh", c) >= 0
}

// validPath is godbus's ObjectPath.IsValid without its allocations. Paths
// are long (/org/freedesktop/machine1/machine/…), so it classes bytes eight
// at a time: every valid class has bit 0, a slash also bit 1, so two slashes
// in a row (an empty element) share bit 1.
func validPath[S string | []byte](p S) bool {
	if len(p) == 1 && p[0] == '/' {
		return true
	}
	if len(p) < 2 || p[0] != '/' || p[len(p)-1] == '/' {
		return false
	}
	prev := pathChars['/']
	rest := p[1:]
	for ; len(rest) >= 8; rest = rest[8:] {
		w := rest[:8]
		c0, c1, c2, c3 := pathChars[w[0]], pathChars[w[1]], pathChars[w[2]], pathChars[w[3]]
		c4, c5, c6, c7 := pathChars[w[4]], pathChars[w[5]], pathChars[w[6]], pathChars[w[7]]
		if c0&c1&c2&c3&c4&c5&c6&c7 == 0 ||
			(prev&c0|c0&c1|c1&c2|c2&c3|c3&c4|c4&c5|c5&c6|c6&c7)&2 != 0 {
			return false
		}
		prev = c7
	}
	for i := 0; i < len(rest); i++ {
		c := pathChars[rest[i]]
		if c == 0 || prev&c&2 != 0 {
			return false
		}
		prev = c
	}
	return true
}

// word is eight bytes of s, little-endian (one load once compiled).
func word(s string) uint64 {
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// memberChars are the bytes of name and path elements: [A-Za-z0-9_].
// pathChars classes bytes for validPath: those 1, '/' 3, anything else 0.
var memberChars, pathChars = func() (m [256]bool, p [256]byte) {
	for c := range m {
		m[c] = c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_'
		if m[c] {
			p[c] = 1
		}
	}
	p['/'] = 3
	return m, p
}()

// validBusName checks a destination as dbus-daemon does; godbus does not.
// validMember is the rule for member names: one element of [A-Za-z0-9_], not
// starting with a digit, at most 255 bytes.
func validMember(s string) bool {
	if s == "" || len(s) > 255 || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !memberChars[s[i]] {
			return false
		}
	}
	return true
}

func validBusName(s string) bool {
	if len(s) > 255 {
		return false
	}
	if unique, ok := strings.CutPrefix(s, ":"); ok {
		return validDotted(unique, true, true)
	}
	return validDotted(s, true, false)
}

// validDotted checks two or more '.'-separated non-empty elements of
// [A-Za-z0-9_] (plus '-' when hyphen), not starting with a digit unless
// digitFirst. With neither it is godbus's interface and error name check.
func validDotted(s string, hyphen, digitFirst bool) bool {
	if len(s) > 255 {
		return false
	}
	elems := 0
	for {
		elem, rest, more := strings.Cut(s, ".")
		if elem == "" || !digitFirst && elem[0] >= '0' && elem[0] <= '9' {
			return false
		}
		for i := 0; i < len(elem); i++ {
			if c := elem[i]; !memberChars[c] && !(hyphen && c == '-') {
				return false
			}
		}
		elems++
		if !more {
			return elems >= 2
		}
		s = rest
	}
}
