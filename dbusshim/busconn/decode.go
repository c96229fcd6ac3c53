package busconn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/godbus/dbus/v5"
)

// godbus decodes a small method call in tens of microseconds (a read call and
// several allocations per value); the shim's calls take a handful of shapes,
// which callReader decodes straight from the bytes into the very values godbus
// would produce. Any other shape goes to godbus.

// errOtherShape sends a message to godbus's decoder.
var errOtherShape = errors.New("busconn: shape left to godbus")

// decodeCall decodes one complete method call and returns it with its serial
// (a dbus.Message built outside godbus cannot carry one). fds arrived with it.
// Header values are taken from cache (nil: none) when they repeat.
func decodeCall(msg []byte, fds []int, cache *headerCache) (*dbus.Message, uint32, error) {
	if len(msg) < fixedHeader {
		return nil, 0, errProtocol
	}
	order, err := byteOrder(msg[0])
	if err != nil {
		return nil, 0, err
	}
	serial := order.Uint32(msg[8:12])
	m, err := fastDecode(msg, order, fds, cache)
	if errors.Is(err, errOtherShape) {
		m, err = godbusDecode(msg, fds)
	}
	if err != nil {
		return nil, 0, err
	}
	if serial == 0 {
		return nil, 0, fmt.Errorf("serial 0: %w", errProtocol)
	}
	if _, ok := m.Headers[dbus.FieldPath]; !ok {
		return nil, 0, fmt.Errorf("method call without a path: %w", errProtocol)
	}
	if _, ok := m.Headers[dbus.FieldMember]; !ok {
		return nil, 0, fmt.Errorf("method call without a member: %w", errProtocol)
	}
	return m, serial, nil
}

// godbusDecode is godbus's decoder, kept from taking the relay down with it.
func godbusDecode(msg []byte, fds []int) (m *dbus.Message, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decoder panic: %v", p)
		}
	}()
	return dbus.DecodeMessageWithFDs(bytes.NewReader(msg), fds)
}

func fastDecode(msg []byte, order binary.ByteOrder, fds []int, cache *headerCache) (*dbus.Message, error) {
	if msg[3] != 1 {
		return nil, fmt.Errorf("protocol version %d: %w", msg[3], errProtocol)
	}
	bodyLen := int(order.Uint32(msg[4:8]))
	fieldsLen := int(order.Uint32(msg[12:16]))
	bodyStart := fixedHeader + int(align8(uint64(fieldsLen)))
	if bodyStart+bodyLen != len(msg) {
		return nil, errProtocol
	}
	m := &dbus.Message{Type: dbus.Type(msg[1]), Flags: dbus.Flags(msg[2]), Headers: make(map[dbus.HeaderField]dbus.Variant, 6)}
	r := callReader{b: msg[:fixedHeader+fieldsLen], pos: fixedHeader, order: order}
	var sig string
	for r.pos < len(r.b) {
		r.align(8)
		code := r.byte()
		vsig := r.signature()
		if r.err != nil {
			return nil, r.err
		}
		var v any
		var raw []byte // of a string-like value, for the cache
		switch {
		case vsig == "s" && (code == 2 || code == 3 || code == 4 || code == 6 || code == 7),
			vsig == "o" && code == 1:
			raw = r.stringBytes()
		case vsig == "u" && (code == 5 || code == 9):
			v = r.u32()
		case vsig == "g" && code == 8:
			raw = r.signatureBytes()
		default:
			return nil, errOtherShape
		}
		if r.err != nil {
			return nil, r.err
		}
		if raw != nil {
			if f := cache.lookup(code, raw); f != nil {
				m.Headers[dbus.HeaderField(code)] = f.v
				if code == 8 {
					sig = f.raw
				}
				continue
			}
		}
		var hv dbus.Variant
		switch code {
		case 8:
			sig = string(raw)
			s, err := dbus.ParseSignature(sig)
			if err != nil {
				return nil, err
			}
			hv = dbus.MakeVariant(s)
		case 1:
			hv = dbus.MakeVariantWithSignature(dbus.ObjectPath(raw), headerSigs[vsig])
		case 5, 9:
			hv = dbus.MakeVariantWithSignature(v, headerSigs[vsig])
		default:
			hv = dbus.MakeVariantWithSignature(string(raw), headerSigs[vsig])
		}
		if raw != nil {
			cache.store(code, raw, hv)
		}
		m.Headers[dbus.HeaderField(code)] = hv
	}
	r = callReader{b: msg, pos: bodyStart, order: order, fds: fds}
	for rest := sig; rest != ""; {
		one, more, err := firstType(rest)
		if err != nil {
			return nil, err
		}
		v := r.value(one, 0)
		if r.err != nil {
			return nil, r.err
		}
		m.Body = append(m.Body, v)
		rest = more
	}
	if r.pos != len(msg) {
		return nil, fmt.Errorf("%d bytes after the body: %w", len(msg)-r.pos, errProtocol)
	}
	return m, nil
}

var headerSigs = map[string]dbus.Signature{
	"s": dbus.ParseSignatureMust("s"),
	"o": dbus.ParseSignatureMust("o"),
	"u": dbus.ParseSignatureMust("u"),
}

// callReader reads values at pos; alignment counts from the message's start.
// The first error sticks and every later read returns zero values.
type callReader struct {
	b     []byte
	pos   int
	order binary.ByteOrder
	fds   []int
	err   error
}

func (r *callReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *callReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || r.pos+n > len(r.b) {
		r.fail(fmt.Errorf("value runs past the end: %w", errProtocol))
		return nil
	}
	p := r.b[r.pos : r.pos+n]
	r.pos += n
	return p
}

func (r *callReader) align(n int) {
	pad := (n - r.pos%n) % n
	for _, c := range r.take(pad) {
		if c != 0 {
			r.fail(fmt.Errorf("non-zero padding: %w", errProtocol))
		}
	}
}

func (r *callReader) byte() byte {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *callReader) u16() uint16 {
	r.align(2)
	if p := r.take(2); p != nil {
		return r.order.Uint16(p)
	}
	return 0
}

func (r *callReader) u32() uint32 {
	r.align(4)
	if p := r.take(4); p != nil {
		return r.order.Uint32(p)
	}
	return 0
}

func (r *callReader) u64() uint64 {
	r.align(8)
	if p := r.take(8); p != nil {
		return r.order.Uint64(p)
	}
	return 0
}

func (r *callReader) string() string { return string(r.stringBytes()) }

// stringBytes is string without the copy: the bytes in the message.
func (r *callReader) stringBytes() []byte { return r.terminated(int(r.u32()), "string") }

func (r *callReader) signature() string { return string(r.signatureBytes()) }

// signatureBytes is signature without the copy.
func (r *callReader) signatureBytes() []byte { return r.terminated(int(r.byte()), "signature") }

// terminated takes n bytes and the NUL after them, and returns the n bytes
// (nil when the message ends first).
func (r *callReader) terminated(n int, what string) []byte {
	p := r.take(n + 1)
	if p == nil {
		return nil
	}
	if p[n] != 0 {
		r.fail(fmt.Errorf("%s not NUL-terminated: %w", what, errProtocol))
	}
	return p[:n:n]
}

// value decodes one complete type. The shapes are those godbus decodes to
// the same Go types: basic types, variants, structs ([]any), arrays of basic
// types and of structs, a{sv} and a{ss}.
func (r *callReader) value(sig string, depth int) any {
	if depth >= maxDepth {
		r.fail(errOtherShape) // godbus reports the limit in its own words
		return nil
	}
	switch sig[0] {
	case 'y':
		return r.byte()
	case 'b':
		switch r.u32() {
		case 0:
			return false
		case 1:
			return true
		}
		r.fail(fmt.Errorf("boolean out of range: %w", errProtocol))
	case 'n':
		return int16(r.u16())
	case 'q':
		return r.u16()
	case 'i':
		return int32(r.u32())
	case 'u':
		return r.u32()
	case 'x':
		return int64(r.u64())
	case 't':
		return r.u64()
	case 's':
		return r.string()
	case 'o':
		return dbus.ObjectPath(r.string())
	case 'g':
		s, err := dbus.ParseSignature(r.signature())
		if err != nil {
			r.fail(err)
		}
		return s
	case 'h':
		idx := r.u32()
		if int(idx) < len(r.fds) {
			return dbus.UnixFD(r.fds[idx])
		}
		return dbus.UnixFDIndex(idx)
	case 'v':
		vs := r.signature()
		s, err := dbus.ParseSignature(vs)
		if r.err != nil {
			return nil
		}
		if err != nil || vs == "" {
			r.fail(errOtherShape)
			return nil
		}
		if one, rest, err := firstType(vs); err != nil || rest != "" || one != vs {
			r.fail(errOtherShape)
			return nil
		}
		v := r.value(vs, depth+1)
		return dbus.MakeVariantWithSignature(v, s)
	case '(':
		r.align(8)
		var out []any
		for rest := sig[1 : len(sig)-1]; rest != "" && r.err == nil; {
			one, more, err := firstType(rest)
			if err != nil {
				r.fail(err)
				break
			}
			out = append(out, r.value(one, depth+1))
			rest = more
		}
		if out == nil {
			out = []any{}
		}
		return out
	case 'a':
		return r.array(sig, depth)
	}
	if r.err == nil {
		r.fail(errOtherShape)
	}
	return nil
}

func (r *callReader) array(sig string, depth int) any {
	n := int(r.u32())
	if n > maxArray {
		r.fail(fmt.Errorf("array of %d bytes: %w", n, errProtocol))
		return nil
	}
	elem := sig[1:]
	switch elem[0] {
	case '(', '{', 'x', 't', 'd':
		r.align(8)
	case 'n', 'q':
		r.align(2)
	case 'y', 'g', 'v':
	default:
		r.align(4)
	}
	if r.err != nil {
		return nil
	}
	end := r.pos + n
	if end > len(r.b) {
		r.fail(fmt.Errorf("array runs past the end: %w", errProtocol))
		return nil
	}
	if elem == "y" {
		return append([]byte{}, r.take(n)...)
	}
	// each collects elements until the array's end.
	each := func(f func()) {
		for r.pos < end && r.err == nil {
			f()
		}
		if r.err == nil && r.pos != end {
			r.fail(fmt.Errorf("array element runs past the array: %w", errProtocol))
		}
	}
	switch elem {
	case "s":
		out := []string{}
		each(func() { out = append(out, r.string()) })
		return out
	case "o":
		out := []dbus.ObjectPath{}
		each(func() { out = append(out, dbus.ObjectPath(r.string())) })
		return out
	case "i":
		out := []int32{}
		each(func() { out = append(out, int32(r.u32())) })
		return out
	case "u":
		out := []uint32{}
		each(func() { out = append(out, r.u32()) })
		return out
	case "t":
		out := []uint64{}
		each(func() { out = append(out, r.u64()) })
		return out
	case "x":
		out := []int64{}
		each(func() { out = append(out, int64(r.u64())) })
		return out
	case "{sv}":
		out := map[string]dbus.Variant{}
		each(func() {
			r.align(8)
			k := r.string()
			if v, ok := r.value("v", depth+2).(dbus.Variant); ok {
				out[k] = v
			}
		})
		return out
	case "{ss}":
		out := map[string]string{}
		each(func() {
			r.align(8)
			k := r.string()
			out[k] = r.string()
		})
		return out
	}
	if elem[0] == '(' {
		out := [][]any{}
		each(func() {
			if v, ok := r.value(elem, depth+1).([]any); ok {
				out = append(out, v)
			}
		})
		return out
	}
	r.fail(errOtherShape)
	return nil
}

// badSignature is built only on failure: firstType runs for every argument of
// every call.
func badSignature(sig string) error {
	return fmt.Errorf("signature %q: %w", sig, errProtocol)
}

// firstType splits the first complete type off sig.
func firstType(sig string) (one, rest string, err error) {
	i := 0
	for i < len(sig) && sig[i] == 'a' {
		i++
	}
	if i == len(sig) {
		return "", "", badSignature(sig)
	}
	switch sig[i] {
	case '(', '{':
		open, close := sig[i], byte(')')
		if open == '{' {
			close = '}'
		}
		level := 0
		for j := i; j < len(sig); j++ {
			switch sig[j] {
			case '(', '{':
				level++
			case ')', '}':
				level--
				if level == 0 {
					if sig[j] != close {
						return "", "", badSignature(sig)
					}
					return sig[:j+1], sig[j+1:], nil
				}
			}
		}
		return "", "", badSignature(sig)
	case ')', '}':
		return "", "", badSignature(sig)
	}
	return sig[:i+1], sig[i+1:], nil
}
