package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/godbus/dbus/v5"
)

// The lean client's calls are messages godbus reads back as sent.
func TestDBusCallDecodes(t *testing.T) {
	for _, c := range []struct {
		member, sig string
		body        []byte
		want        []any
	}{
		{"ListImages", "", nil, nil},
		{"GetImageOSRelease", "s", dbusString("bench-img-7"), []any{"bench-img-7"}},
	} {
		msg := dbusCall(m1Name, string(m1Path), m1Mgr, c.member, c.sig, c.body)
		binary.LittleEndian.PutUint32(msg[8:], 77)
		m, err := dbus.DecodeMessage(bytes.NewReader(msg))
		if err != nil {
			t.Fatalf("%s: %v", c.member, err)
		}
		h := m.Headers
		if m.Type != dbus.TypeMethodCall || m.Serial() != 77 ||
			h[dbus.FieldPath].Value() != m1Path || h[dbus.FieldDestination].Value() != m1Name ||
			h[dbus.FieldInterface].Value() != m1Mgr || h[dbus.FieldMember].Value() != c.member {
			t.Errorf("%s: decoded as %v", c.member, m)
		}
		if sig, ok := h[dbus.FieldSignature]; ok != (c.sig != "") || ok && sig.Value().(dbus.Signature).String() != c.sig {
			t.Errorf("%s: signature %v", c.member, sig)
		}
		if len(m.Body) != len(c.want) || len(c.want) > 0 && m.Body[0] != c.want[0] {
			t.Errorf("%s: body %v", c.member, m.Body)
		}
	}
}

// replyBytes is a reply (or error, when errName is set) to serial, encoded by
// godbus in the given byte order.
func replyBytes(t *testing.T, order binary.ByteOrder, serial uint32, errName string, body ...any) []byte {
	t.Helper()
	m := &dbus.Message{Type: dbus.TypeMethodReply, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldReplySerial: dbus.MakeVariant(serial),
		dbus.FieldSender:      dbus.MakeVariant(":1.7"),
		dbus.FieldDestination: dbus.MakeVariant(":1.9"),
	}, Body: body}
	if errName != "" {
		m.Type = dbus.TypeError
		m.Headers[dbus.FieldErrorName] = dbus.MakeVariant(errName)
	}
	if len(body) > 0 {
		m.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(body...))
	}
	var b bytes.Buffer
	if err := m.EncodeTo(&b, order); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type listEntry struct {
	Name, Type    string
	ReadOnly      bool
	CrTime, MTime uint64
	Usage         uint64
	Path          dbus.ObjectPath
}

// The reader takes the reply serial and the error name from the header, skips
// exactly the body, in either byte order.
func TestDBusReadMessage(t *testing.T) {
	list := []listEntry{{"bench-img-0", "directory", false, 1, 0, ^uint64(0), "/org/freedesktop/machine1/image/bench_2dimg_2d0"}}
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		ok := replyBytes(t, order, 5, "", list)
		bad := replyBytes(t, order, 6, "org.freedesktop.machine1.NoSuchImage", "No image 'x' known")
		r := bufio.NewReader(bytes.NewReader(append(append([]byte{}, ok...), bad...)))
		typ, to, name, n, err := dbusReadMessage(r)
		// One entry: 4 for the array's length, 4 to align the struct, then
		// the fields (each string with its length and NUL) and their padding.
		want := 4 + 4 + (4 + 11 + 1) + (4 + 9 + 1) + 2 + 4 + 4 + 8*3 + (4 + 47 + 1)
		if err != nil || typ != dbusMethodReturn || to != 5 || name != "" || n != want {
			t.Errorf("%v: reply read as type %d to %d %q, %d body bytes (want %d), %v", order, typ, to, name, n, want, err)
		}
		typ, to, name, _, err = dbusReadMessage(r)
		if err != nil || typ != dbusError || to != 6 || name != "org.freedesktop.machine1.NoSuchImage" {
			t.Errorf("%v: error read as type %d to %d %q, %v", order, typ, to, name, err)
		}
		if _, err := r.ReadByte(); err == nil {
			t.Errorf("%v: bytes left after both messages", order)
		}
	}
	huge := replyBytes(t, binary.LittleEndian, 5, "", "x")
	binary.LittleEndian.PutUint32(huge[4:], dbusMaxMessage)
	if _, _, _, _, err := dbusReadMessage(bufio.NewReader(bytes.NewReader(huge))); err == nil {
		t.Error("a body past the specification's bound was read")
	}
	if _, _, err := dbusReplyFields([]byte{5, 1, 'u', 0, 1, 0}, binary.LittleEndian); err == nil {
		t.Error("a cut reply serial was read")
	}
}

// fakeBus answers the client's handshake and then, for each call, whatever
// answer returns.
func fakeBus(t *testing.T, answer func(serial uint32) []byte) *dconn {
	dir := t.TempDir()
	ln, err := net.Listen("unix", dir+"/bus")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		line, _ := r.ReadString('\n')
		if line != "\x00AUTH EXTERNAL 30\r\n" { // uid 0: "0" in hex
			c.Write([]byte("REJECTED EXTERNAL\r\n"))
			return
		}
		c.Write([]byte("OK 0123456789abcdef0123456789abcdef\r\n"))
		if line, _ := r.ReadString('\n'); line != "BEGIN\r\n" {
			return
		}
		for first := true; ; first = false {
			m, err := dbus.DecodeMessage(r)
			if err != nil {
				return
			}
			if first {
				c.Write(replyBytes(t, binary.LittleEndian, m.Serial(), "", ":1.9"))
				continue
			}
			c.Write(answer(m.Serial()))
		}
	}()
	d, err := dbusDial("unix:path="+dir+"/bus", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestDconnCall(t *testing.T) {
	signal := func() []byte {
		m := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:      dbus.MakeVariant(dbus.ObjectPath("/org/freedesktop/DBus")),
			dbus.FieldInterface: dbus.MakeVariant("org.freedesktop.DBus"),
			dbus.FieldMember:    dbus.MakeVariant("NameAcquired"),
			dbus.FieldSignature: dbus.MakeVariant(dbus.SignatureOf("")),
		}, Body: []any{":1.9"}}
		var b bytes.Buffer
		m.EncodeTo(&b, binary.LittleEndian)
		return b.Bytes()
	}
	list := dbusCall(m1Name, string(m1Path), m1Mgr, "ListImages", "", nil)
	for _, c := range []struct {
		name   string
		answer func(serial uint32) []byte
		ok     bool
	}{
		{"a signal, then the reply", func(s uint32) []byte {
			return append(signal(), replyBytes(t, binary.LittleEndian, s, "", []string{"a", "b"})...)
		}, true},
		{"a reply to another call", func(s uint32) []byte { return replyBytes(t, binary.LittleEndian, s+1, "", "x") }, false},
		{"an error", func(s uint32) []byte {
			return replyBytes(t, binary.LittleEndian, s, "org.freedesktop.DBus.Error.Failed", "no")
		}, false},
	} {
		d := fakeBus(t, c.answer)
		for range 2 { // the serial moves on
			n, err := d.call(list)
			if (err == nil) != c.ok || c.ok && n != 4+(4+1+1)+2+(4+1+1) {
				t.Errorf("%s: %d body bytes, %v", c.name, n, err)
			}
		}
	}
}
