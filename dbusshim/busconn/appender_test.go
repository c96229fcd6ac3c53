package busconn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// entries writes imageEntry rows as an Appender, from the same values.
type entries struct {
	rows []imageEntry
	sig  string
}

func (l entries) DBusSignature() string { return l.sig }

func (l entries) AppendDBus(w *Writer) error {
	a := w.ArrayStart(8)
	for _, r := range l.rows {
		w.StructStart()
		if err := w.String(r.Name); err != nil {
			return err
		}
		if err := w.String(r.Type); err != nil {
			return err
		}
		w.Bool(r.ReadOnly)
		w.Uint64(r.CrTime)
		w.Uint64(r.MTime)
		w.Uint64(r.Usage)
		if err := w.ObjectPath([]byte(r.Path)); err != nil {
			return err
		}
	}
	return w.ArrayEnd(a)
}

// An Appender's message is byte for byte the message of the values it
// stands for, after any header and at any offset in the buffer.
func TestAppenderWritesWhatReflectionWrites(t *testing.T) {
	for _, n := range []int{0, 1, 3, 1000} {
		rows := imageList(n)
		m := &outMessage{Type: TypeMethodReturn, Serial: 9, ReplySerial: 4, Destination: ":1.5", Body: []any{rows}}
		want, err := appendMessage([]byte("xyz"), m)
		if err != nil {
			t.Fatal(err)
		}
		m.Body = []any{entries{rows, "a(ssbttto)"}}
		got, err := appendMessage([]byte("xyz"), m)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%d rows: %d bytes, %v; want %d bytes", n, len(got), err, len(want))
		}
		body, err := EncodeBody(entries{rows, "a(ssbttto)"})
		if err != nil || !bytes.HasSuffix(want, body) || binary.LittleEndian.Uint32(want[7:]) != uint32(len(body)) {
			t.Errorf("%d rows: EncodeBody gave %d bytes, %v", n, len(body), err)
		}
	}
}

// What the encoder refuses in values it refuses from an Appender too.
func TestAppenderChecks(t *testing.T) {
	bad := imageList(2)
	bad[1].Path = "/org//x"
	for name, a := range map[string]Appender{
		"an invalid object path": entries{bad, "a(ssbttto)"},
		"an invalid signature":   entries{imageList(1), "a(ss"},
	} {
		m := &outMessage{Type: TypeMethodReturn, Serial: 9, ReplySerial: 4, Body: []any{a}}
		if _, err := appendMessage(nil, m); err == nil || errors.Is(err, errUnencodable) {
			t.Errorf("%s: %v", name, err)
		}
	}
	notUTF8 := imageList(1)
	notUTF8[0].Name = "\xff"
	if _, err := EncodeBody(entries{notUTF8, "a(ssbttto)"}); err == nil {
		t.Error("a string that is not UTF-8 was written")
	}
}
