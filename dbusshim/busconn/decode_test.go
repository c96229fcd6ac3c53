package busconn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/godbus/dbus/v5"
)

// encodeCall is a method call as godbus's client side would send it, with the
// sender the bus adds.
func encodeCall(t testing.TB, order binary.ByteOrder, flags dbus.Flags, body ...any) []byte {
	t.Helper()
	m := &dbus.Message{Type: dbus.TypeMethodCall, Flags: flags, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:        dbus.MakeVariant(dbus.ObjectPath("/org/freedesktop/machine1")),
		dbus.FieldInterface:   dbus.MakeVariant("org.freedesktop.machine1.Manager"),
		dbus.FieldMember:      dbus.MakeVariant("RegisterMachine"),
		dbus.FieldDestination: dbus.MakeVariant("org.freedesktop.machine1"),
		dbus.FieldSender:      dbus.MakeVariant(":1.45"),
	}, Body: body}
	if len(body) > 0 {
		m.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(body...))
	}
	var buf bytes.Buffer
	if err := m.EncodeTo(&buf, order); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	order.PutUint32(b[8:12], 77) // godbus leaves the serial to its connection
	return b
}

type kv struct {
	Name  string
	Value dbus.Variant
}

// The shapes of the shim's calls, decoded by the fast path to exactly what
// godbus decodes, in both byte orders.
func TestFastDecodeMatchesGodbus(t *testing.T) {
	bodies := [][]any{
		nil,
		{"bench", []byte{}, "bench", "container", uint32(1234), ""},
		{"name", []byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, "svc", "vm", uint32(1), "/root", []int32{2, 3, -1}},
		{"name", []kv{{"Id", dbus.MakeVariant([]byte{1, 2})}, {"LeaderPID", dbus.MakeVariant(uint32(9))}, {"LeaderPIDFDID", dbus.MakeVariant(uint64(1) << 40)}, {"NetworkInterfaces", dbus.MakeVariant([]int32{1, 2})}}},
		{"name", []kv{}, []kv{{"Description", dbus.MakeVariant("x")}}},
		{"org.freedesktop.machine1.Machine", "Name"},
		{"org.freedesktop.LogControl1", "LogLevel", dbus.MakeVariant("debug")},
		{"m", "all", int32(15)},
		{"m", "/src", "/dst", true, false},
		{"m", "/src", "/dst", uint64(3)},
		{"m", "user", "/bin/sh", []string{"sh", "-c", ""}, []string{"A=b"}},
		{byte(1), uint64(2), byte(3), int16(-4), uint16(5), int64(-6), byte(7), dbus.ObjectPath("/a/b"), dbus.Signature{}},
		{map[string]dbus.Variant{"a": dbus.MakeVariant(uint32(1)), "b": dbus.MakeVariant([]string{"x"})}, map[string]string{"k": "v", "": ""}},
		{[]uint32{1, 2}, []uint64{3}, []int64{-4}, []dbus.ObjectPath{"/x", "/y/z"}, []string{}},
		{byte(9), []struct{ A byte }{{1}, {2}}, struct {
			A string
			B []int32
		}{"s", []int32{7}}},
		{dbus.MakeVariant(dbus.MakeVariant(struct{ A, B string }{"in", "side"}))},
		{dbus.MakeVariant(map[string]dbus.Variant{"nested": dbus.MakeVariant(uint64(1))})},
		{dbus.MakeVariant([]kv{{"k", dbus.MakeVariant(true)}})},
	}
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		for i, body := range bodies {
			raw := encodeCall(t, order, dbus.FlagAllowInteractiveAuthorization, body...)
			want, err := dbus.DecodeMessage(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("%v body %d: godbus: %v", order, i, err)
			}
			got, err := fastDecode(raw, order, nil, nil)
			if err != nil {
				t.Fatalf("%v body %d (%s): fast path: %v", order, i, dbus.SignatureOf(body...), err)
			}
			if got.Type != want.Type || got.Flags != want.Flags || !reflect.DeepEqual(got.Headers, want.Headers) {
				t.Errorf("%v body %d: header\n got %v %v %#v\nwant %v %v %#v", order, i, got.Type, got.Flags, got.Headers, want.Type, want.Flags, want.Headers)
			}
			if !reflect.DeepEqual(got.Body, want.Body) {
				t.Errorf("%v body %d: body\n got %#v\nwant %#v", order, i, got.Body, want.Body)
			}
			if _, serial, err := decodeCall(raw, nil, nil); err != nil || serial != 77 {
				t.Errorf("%v body %d: decodeCall serial %d, %v", order, i, serial, err)
			}
		}
	}
}

// Shapes outside the fast path still decode, through godbus, to the same.
func TestDecodeCallOtherShapes(t *testing.T) {
	for i, body := range [][]any{
		{[]bool{true, false}},
		{[][]string{{"a"}, {"b", "c"}}},
		{map[uint32]string{1: "x"}},
		{[]dbus.Variant{dbus.MakeVariant("x")}},
		{float64(1.5)},
	} {
		raw := encodeCall(t, binary.LittleEndian, 0, body...)
		if _, err := fastDecode(raw, binary.LittleEndian, nil, nil); !errors.Is(err, errOtherShape) {
			t.Errorf("body %d: fast path said %v, want errOtherShape", i, err)
		}
		got, _, err := decodeCall(raw, nil, nil)
		if err != nil {
			t.Fatalf("body %d: %v", i, err)
		}
		want, _ := dbus.DecodeMessage(bytes.NewReader(raw))
		if !reflect.DeepEqual(got.Body, want.Body) {
			t.Errorf("body %d: %#v, want %#v", i, got.Body, want.Body)
		}
	}
}

// fds: an index within the fds that came is that fd, beyond them an index.
func TestDecodeCallFDs(t *testing.T) {
	raw := encodeCall(t, binary.LittleEndian, 0, dbus.UnixFDIndex(0), "x", dbus.UnixFDIndex(1))
	m, _, err := decodeCall(raw, []int{42}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Body[0] != dbus.UnixFD(42) || m.Body[2] != dbus.UnixFDIndex(1) {
		t.Fatalf("body %#v", m.Body)
	}
}

// Broken messages are errors, never panics, whichever decoder has them.
func TestDecodeCallRejects(t *testing.T) {
	good := encodeCall(t, binary.LittleEndian, 0, "bench", []byte{1}, uint32(5))
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := map[string][]byte{
		"short":      good[:10],
		"truncated":  good[:len(good)-1],
		"trailing":   append(append([]byte(nil), good...), 0),
		"serial 0":   mutate(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:12], 0); return b }),
		"version":    mutate(func(b []byte) []byte { b[3] = 2; return b }),
		"byte order": mutate(func(b []byte) []byte { b[0] = 'x'; return b }),
		"huge string": mutate(func(b []byte) []byte {
			return bytes.Replace(b, []byte{5, 0, 0, 0, 'b'}, []byte{0xff, 0xff, 0xff, 0x7f, 'b'}, 1)
		}),
		"no NUL":        mutate(func(b []byte) []byte { return bytes.Replace(b, []byte("bench\x00"), []byte("benchX"), 1) }),
		"bad signature": mutate(func(b []byte) []byte { return bytes.Replace(b, []byte("sayu\x00"), []byte("sa(u\x00"), 1) }),
	}
	for name, raw := range cases {
		if _, _, err := decodeCall(raw, nil, nil); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func FuzzDecodeCall(f *testing.F) {
	f.Add(encodeCall(f, binary.LittleEndian, 0, "bench", []byte{}, "bench", "container", uint32(1234), ""))
	f.Add(encodeCall(f, binary.BigEndian, 0, "n", []kv{{"LeaderPID", dbus.MakeVariant(uint32(9))}}))
	f.Add(encodeCall(f, binary.LittleEndian, 0, map[string]dbus.Variant{"a": dbus.MakeVariant([]int32{1})}, dbus.ObjectPath("/x")))
	f.Fuzz(func(t *testing.T, raw []byte) {
		n, err := messageLen(raw)
		if err != nil || n == 0 || n > len(raw) {
			return
		}
		raw = raw[:n]
		got, _, err := decodeCall(raw, nil, nil)
		if err != nil {
			return
		}
		want, werr := godbusDecode(raw, nil)
		if werr != nil {
			return // dbus-daemon validates more than either decoder
		}
		if !reflect.DeepEqual(got.Body, want.Body) || !reflect.DeepEqual(got.Headers, want.Headers) {
			t.Fatalf("fast path and godbus differ:\n got %#v %#v\nwant %#v %#v", got.Headers, got.Body, want.Headers, want.Body)
		}
	})
}

func BenchmarkDecodeRegisterMachine(b *testing.B) {
	raw := encodeCall(b, binary.LittleEndian, 0, "bench", []byte{}, "bench", "container", uint32(1234), "")
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := decodeCall(raw, nil, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("godbus", func(b *testing.B) {
		for b.Loop() {
			if _, err := dbus.DecodeMessage(bytes.NewReader(raw)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
