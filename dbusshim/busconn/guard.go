package busconn

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"

	"github.com/godbus/dbus/v5"
)

// fdArraySig reports whether a signature holds a unix fd as the element of an
// array or as a dict key or value: the shapes godbus v5.2.4 cannot decode when
// real fds come with the message. An fd inside a struct inside an array is
// fine (godbus builds []any for structs).
func fdArraySig(sig string) bool {
	return strings.Contains(sig, "ah") || strings.Contains(sig, "{h") || strings.Contains(sig, "h}")
}

// safeForGodbus reports whether godbus can decode msg with its fds attached.
// Only a message whose signature may hide an fd array in a variant is decoded
// here, without fds, which godbus handles (fds then stay indices).
func safeForGodbus(h Header, msg []byte) bool {
	if fdArraySig(h.Signature) {
		return false
	}
	if !strings.Contains(h.Signature, "v") {
		return true
	}
	m, err := dbus.DecodeMessage(bytes.NewReader(msg))
	if err != nil {
		return false
	}
	for _, v := range m.Body {
		if hasFDArray(reflect.ValueOf(v), 0) {
			return false
		}
	}
	return true
}

// hasFDArray walks a decoded value for variants whose signature holds an fd array.
func hasFDArray(v reflect.Value, depth int) bool {
	if depth > 64 || !v.IsValid() {
		return depth > 64
	}
	if vr, ok := v.Interface().(dbus.Variant); ok {
		if fdArraySig(vr.Signature().String()) {
			return true
		}
		return hasFDArray(reflect.ValueOf(vr.Value()), depth+1)
	}
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		return hasFDArray(v.Elem(), depth+1)
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return false
		}
		for i := 0; i < v.Len(); i++ {
			if hasFDArray(v.Index(i), depth+1) {
				return true
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			if hasFDArray(it.Key(), depth+1) || hasFDArray(it.Value(), depth+1) {
				return true
			}
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() && hasFDArray(v.Field(i), depth+1) {
				return true
			}
		}
	}
	return false
}

// withoutFDs rewrites msg as the same message without unix fds: its header
// loses the UNIX_FDS field, its body stays byte for byte, so the fd values in
// it read as plain indices. (Re-encoding the decoded body would not do: godbus
// decodes structs as []any and would encode them back as arrays.) It returns
// nil when msg cannot be decoded.
func withoutFDs(msg []byte) []byte {
	m, err := dbus.DecodeMessage(bytes.NewReader(msg))
	if err != nil {
		return nil
	}
	order := binary.ByteOrder(binary.LittleEndian)
	if msg[0] == 'B' {
		order = binary.BigEndian
	}
	body := msg[fixedHeader+align8(uint64(order.Uint32(msg[12:16]))):]
	delete(m.Headers, dbus.FieldUnixFDs)
	m.Body = nil
	var buf bytes.Buffer
	if err := m.EncodeTo(&buf, order); err != nil {
		return nil
	}
	out := buf.Bytes() // header fields padded to 8, empty body
	order.PutUint32(out[4:8], uint32(len(body)))
	return append(out, body...)
}
