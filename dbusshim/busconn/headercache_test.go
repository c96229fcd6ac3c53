package busconn

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
)

var raceEnabled bool // set by race_test.go

// encodeCallWith is encodeCall with the headers given.
func encodeCallWith(t testing.TB, path dbus.ObjectPath, member, sender string, body ...any) []byte {
	t.Helper()
	m := &dbus.Message{Type: dbus.TypeMethodCall, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:        dbus.MakeVariant(path),
		dbus.FieldInterface:   dbus.MakeVariant("org.freedesktop.machine1.Manager"),
		dbus.FieldMember:      dbus.MakeVariant(member),
		dbus.FieldDestination: dbus.MakeVariant("org.freedesktop.machine1"),
		dbus.FieldSender:      dbus.MakeVariant(sender),
	}, Body: body}
	if len(body) > 0 {
		m.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(body...))
	}
	var buf bytes.Buffer
	if err := m.EncodeTo(&buf, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	binary.LittleEndian.PutUint32(b[8:12], 77)
	return b
}

// Through one cache, calls whose headers repeat, change and come back decode
// to exactly what godbus decodes, each time.
func TestHeaderCacheDecodesAsGodbus(t *testing.T) {
	long := dbus.ObjectPath("/org/freedesktop/machine1/machine/" + strings.Repeat("a", 300))
	calls := [][]byte{
		encodeCallWith(t, "/org/freedesktop/machine1", "RegisterMachine", ":1.45", "m", []byte{}, "svc", "container", uint32(1), ""),
		encodeCallWith(t, "/org/freedesktop/machine1", "RegisterMachine", ":1.45", "n", []byte{1}, "svc", "vm", uint32(2), "/"),
		encodeCallWith(t, "/org/freedesktop/machine1", "UnregisterMachine", ":1.45", "n"),
		encodeCallWith(t, "/org/freedesktop/machine1", "UnregisterMachine", ":1.46", "n"),
		encodeCallWith(t, "/org/freedesktop/machine1/machine/n", "Terminate", ":1.46"),
		encodeCallWith(t, long, "Terminate", ":1.46"),
		encodeCallWith(t, long, "Terminate", ":1.46"),
		encodeCallWith(t, "/org/freedesktop/machine1", "GetMachine", ":1.45", "m"),
		encodeCallWith(t, "/org/freedesktop/machine1", "RegisterMachine", ":1.45", "m", []byte{}, "svc", "container", uint32(1), ""),
		encodeCallWith(t, "/org/freedesktop/machine1", "UnregisterMachine", ":1.45", "n"),
	}
	var cache headerCache
	for round := 0; round < 2; round++ {
		for i, raw := range calls {
			want, err := dbus.DecodeMessage(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := decodeCall(raw, nil, &cache)
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			if !reflect.DeepEqual(got.Headers, want.Headers) {
				t.Errorf("round %d call %d: headers\n got %#v\nwant %#v", round, i, got.Headers, want.Headers)
			}
			if !reflect.DeepEqual(got.Body, want.Body) {
				t.Errorf("round %d call %d: body\n got %#v\nwant %#v", round, i, got.Body, want.Body)
			}
		}
	}
	if c := cache.fields[dbus.FieldPath].raw; c != "/org/freedesktop/machine1" {
		t.Errorf("cached path %q: a path past the bound was kept, or the last one was not", c)
	}
}

// Repeated headers cost no allocation: a call decoded after one like it
// allocates only its message, header map and body.
func TestHeaderCacheSavesAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	raw := encodeCallWith(t, "/org/freedesktop/machine1", "UnregisterMachine", ":1.45", "n")
	var cache headerCache
	decodeCall(raw, nil, &cache)
	cached := testing.AllocsPerRun(100, func() { decodeCall(raw, nil, &cache) })
	fresh := testing.AllocsPerRun(100, func() { decodeCall(raw, nil, nil) })
	// Five string headers and the signature: a string and a box each.
	if fresh-cached < 10 {
		t.Fatalf("%v allocations with the cache, %v without: want 10 fewer", cached, fresh)
	}
}
