package busconn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/godbus/dbus/v5"
)

// machineEntry mirrors machine1's ListMachines element.
type machineEntry struct {
	Name, Class, Service string
	Path                 dbus.ObjectPath
}

func machineList(n int) []machineEntry {
	out := make([]machineEntry, n)
	for i := range out {
		name := fmt.Sprintf("bench-m-%05d", i)
		out[i] = machineEntry{name, "container", "machined-bench",
			dbus.ObjectPath("/org/freedesktop/machine1/machine/" + strings.ReplaceAll(name, "-", "_2d"))}
	}
	return out
}

// godbusMessage is the message godbus would send for m. godbus cannot set a
// serial on a message it did not decode, so its encoding carries serial 0.
func godbusMessage(m *outMessage) *dbus.Message {
	msg := &dbus.Message{
		Type:    dbus.Type(m.Type),
		Flags:   dbus.Flags(m.Flags),
		Headers: map[dbus.HeaderField]dbus.Variant{},
		Body:    m.Body,
	}
	if m.Type == TypeSignal {
		msg.Headers[dbus.FieldPath] = dbus.MakeVariant(m.Path)
		msg.Headers[dbus.FieldInterface] = dbus.MakeVariant(m.Interface)
		msg.Headers[dbus.FieldMember] = dbus.MakeVariant(m.Member)
	} else {
		msg.Headers[dbus.FieldReplySerial] = dbus.MakeVariant(m.ReplySerial)
	}
	if m.Destination != "" {
		msg.Headers[dbus.FieldDestination] = dbus.MakeVariant(m.Destination)
	}
	if m.ErrorName != "" {
		msg.Headers[dbus.FieldErrorName] = dbus.MakeVariant(m.ErrorName)
	}
	if len(m.Body) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(m.Body...))
	}
	return msg
}

func godbusEncode(m *outMessage) ([]byte, error) {
	var buf bytes.Buffer
	err := godbusMessage(m).EncodeTo(&buf, binary.LittleEndian)
	return buf.Bytes(), err
}

// bodyOf is what follows a message's header fields and their padding.
func bodyOf(msg []byte) []byte {
	return msg[fixedHeader+align8(uint64(binary.LittleEndian.Uint32(msg[12:16]))):]
}

// hasMap reports whether a body holds a map anywhere: godbus writes map
// entries in iteration order, we sort them, so only the decoded values agree.
func hasMap(body []any) bool {
	var walk func(v reflect.Value, depth int) bool
	walk = func(v reflect.Value, depth int) bool {
		if !v.IsValid() || depth > 100 {
			return false
		}
		if v.Type() == variantType {
			return walk(reflect.ValueOf(v.Interface().(dbus.Variant).Value()), depth+1)
		}
		switch v.Kind() {
		case reflect.Map:
			return true
		case reflect.Pointer, reflect.Interface:
			return walk(v.Elem(), depth+1)
		case reflect.Slice, reflect.Array:
			for i := 0; i < v.Len(); i++ {
				if walk(v.Index(i), depth+1) {
					return true
				}
			}
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				if v.Type().Field(i).IsExported() && walk(v.Field(i), depth+1) {
					return true
				}
			}
		}
		return false
	}
	for _, v := range body {
		if walk(reflect.ValueOf(v), 0) {
			return true
		}
	}
	return false
}

// sameAsGodbus encodes m both ways and requires godbus to decode the two
// alike, and the bodies to be byte-identical when no map makes order differ.
func sameAsGodbus(t testing.TB, m *outMessage) {
	t.Helper()
	ours, err := appendMessage(nil, m)
	if err != nil {
		t.Fatalf("appendMessage: %v", err)
	}
	theirs, err := godbusEncode(m)
	if err != nil {
		t.Fatalf("godbus EncodeTo: %v", err)
	}
	if n, err := messageLen(ours); err != nil || n != len(ours) {
		t.Fatalf("messageLen = %d, %v; encoded %d bytes", n, err, len(ours))
	}
	got, err := dbus.DecodeMessage(bytes.NewReader(ours))
	if err != nil {
		t.Fatalf("godbus cannot decode ours: %v\n% x", err, ours)
	}
	want, err := dbus.DecodeMessage(bytes.NewReader(theirs))
	if err != nil {
		t.Fatalf("godbus cannot decode its own: %v", err)
	}
	if got.Type != want.Type || got.Flags != want.Flags || got.Serial() != m.Serial {
		t.Errorf("type/flags/serial = %v/%v/%d, want %v/%v/%d", got.Type, got.Flags, got.Serial(), want.Type, want.Flags, m.Serial)
	}
	if !reflect.DeepEqual(got.Headers, want.Headers) {
		t.Errorf("headers = %v, want %v", got.Headers, want.Headers)
	}
	if len(m.Body) > 0 {
		sig, _ := got.Headers[dbus.FieldSignature].Value().(dbus.Signature)
		if sig != dbus.SignatureOf(m.Body...) {
			t.Errorf("signature %q, godbus's SignatureOf gives %q", sig, dbus.SignatureOf(m.Body...))
		}
	}
	if !reflect.DeepEqual(got.Body, want.Body) {
		t.Errorf("body decodes to\n%#v\nwant\n%#v", got.Body, want.Body)
	}
	if !hasMap(m.Body) {
		if !bytes.Equal(bodyOf(ours), bodyOf(theirs)) {
			t.Errorf("body bytes\n% x\nwant\n% x", bodyOf(ours), bodyOf(theirs))
		}
		if len(ours) != len(theirs) {
			t.Errorf("message is %d bytes, godbus's %d", len(ours), len(theirs))
		}
	}
	h, err := parseHeader(ours)
	if err != nil || h.Type != m.Type || h.Signature != dbus.SignatureOf(m.Body...).String() {
		t.Errorf("parseHeader = %+v, %v", h, err)
	}
}

func reply(body ...any) *outMessage {
	return &outMessage{Type: TypeMethodReturn, Serial: 7, ReplySerial: 42, Destination: ":1.42", Body: body}
}

type (
	named    string
	namedU32 uint32
	namedSl  []namedU32
	namedB   bool
	namedT   uint64
)

// flagsAndSizes has bool and uint64 fields of named types, misaligned by a byte.
type flagsAndSizes struct {
	Y byte
	B namedB
	T namedT
	C bool
	U uint64
}

type tagged struct {
	A       string
	hidden  int    // godbus skips unexported fields
	Skipped uint32 `dbus:"-"`
	D       uint16
}

type inner struct {
	Y byte
	T uint64
}

type withIface struct {
	S string
	V any
}

func testBodies() map[string][]any {
	type iay struct {
		I int32
		B []byte
	}
	type pair struct {
		S string
		U uint32
	}
	type yt struct{ T uint64 }
	s := "str"
	aiay := []iay{{1, []byte{1, 2, 3}}, {-2, nil}, {3, []byte{9}}}
	deep := dbus.MakeVariant("bottom")
	for range 10 {
		deep = dbus.MakeVariant(deep)
	}
	sv := map[string]dbus.Variant{
		"s":       dbus.MakeVariant("x"),
		"u":       dbus.MakeVariant(uint32(5)),
		"b":       dbus.MakeVariant(true),
		"t":       dbus.MakeVariant(uint64(1) << 50),
		"as":      dbus.MakeVariant([]string{"a", "b"}),
		"a(iay)":  dbus.MakeVariant(aiay),
		"nested":  dbus.MakeVariant(dbus.MakeVariant(int16(-3))),
		"struct":  dbus.MakeVariant(pair{"p", 9}),
		"empty":   dbus.MakeVariant([]string{}),
		"deep":    deep,
		"o":       dbus.MakeVariant(dbus.ObjectPath("/a/b")),
		"g":       dbus.MakeVariant(dbus.ParseSignatureMust("a{sv}")),
		"d":       dbus.MakeVariant(2.5),
		"y":       dbus.MakeVariant(byte(3)),
		"a{ss}":   dbus.MakeVariant(map[string]string{"k": "v"}),
		"a{sv}":   dbus.MakeVariant(map[string]dbus.Variant{"in": dbus.MakeVariant(uint16(2))}),
		"yt list": dbus.MakeVariant([]yt{{1}, {2}}),
	}
	return map[string][]any{
		"empty":            nil,
		"bool":             {true, false},
		"byte":             {byte(7)},
		"int16":            {int16(-3)},
		"uint16":           {uint16(9)},
		"int32":            {int32(-5)},
		"uint32":           {uint32(6)},
		"int64":            {int64(-1) << 40},
		"uint64":           {uint64(1) << 63},
		"float64":          {3.5},
		"int uint":         {-7, uint(8)},
		"string empty":     {""},
		"string":           {"hello, wörld"},
		"path root":        {dbus.ObjectPath("/")},
		"path":             {dbus.ObjectPath("/org/freedesktop/machine1/machine/_2d")},
		"signature":        {dbus.ParseSignatureMust("a(ssso)")},
		"signature nil":    {dbus.Signature{}},
		"variant":          {dbus.MakeVariant("v")},
		"variant struct":   {dbus.MakeVariant(pair{"s", 1})},
		"ay empty":         {[]byte{}},
		"ay nil":           {[]byte(nil)},
		"ay":               {[]byte{1, 2, 3}},
		"as empty":         {[]string{}},
		"as":               {[]string{"a", "", "bcd"}},
		"ao":               {[]dbus.ObjectPath{"/", "/x/y"}},
		"av":               {[]any{"s", uint32(1), dbus.MakeVariant("wrapped twice"), []any{byte(1)}}},
		"av empty":         {[]any{}},
		"ab":               {[]bool{true, false, true}},
		"an":               {byte(1), []int16{1, -1}},
		"ax after y":       {byte(1), []int64{1, -1}},
		"a(ssso) 501":      {machineList(501)},
		"a(ssso) empty":    {[]machineEntry{}},
		"a(ssbttto) 1000":  {imageList(1000)},
		"a(ssbttto) empty": {[]imageEntry{}},
		"y a(ybtbt)":       {byte(1), []flagsAndSizes{{1, true, 1 << 40, false, ^uint64(0)}, {2, false, 0, true, 5}}},
		"aa(yt)":           {[][]inner{{{1, 2}, {3, 4}}, {}, {{5, 6}}}},
		"a(iay)":           {aiay},
		"aay":              {[][]byte{{1}, {}, {2, 3}}},
		"a{ss}":            {map[string]string{"b": "2", "a": "1", "": "empty"}},
		"a{ss} empty":      {map[string]string{}},
		"a{sv}":            {sv},
		"a{sv} any":        {map[string]any{"u": uint32(1), "v": dbus.MakeVariant("x"), "as": []string{"q"}}},
		"a{sv} after y":    {byte(1), sv},
		"a{us}":            {map[uint32]string{3: "c", 1: "a", 2: "b"}},
		"a{ot}":            {map[dbus.ObjectPath]uint64{"/b": 2, "/a": 1}},
		"a{xd}":            {map[int64]float64{-1: 0.5, 1: 1.5}},
		"a{sas}":           {map[string][]string{"k": {"a", "b"}, "l": nil}},
		"y t":              {byte(1), uint64(2)},
		"y a(t)":           {byte(1), []yt{{5}, {6}}},
		"y a(t) empty":     {byte(1), []yt{}},
		"y n":              {byte(1), int16(2)},
		"y s y o":          {byte(1), "s", byte(2), dbus.ObjectPath("/p")},
		"y v(t)":           {byte(1), dbus.MakeVariant(uint64(3))},
		"struct":           {inner{1, 2}},
		"y struct":         {byte(9), inner{1, 2}},
		"tagged":           {tagged{A: "a", hidden: 1, Skipped: 2, D: 3}},
		"pointer":          {&inner{3, 4}, &s},
		"named":            {named("n"), namedU32(4), namedSl{1, 2}},
		"array":            {[3]uint16{1, 2, 3}, [2]string{"x", "y"}},
		"struct any":       {withIface{"a", uint32(1)}, []withIface{{"b", "x"}, {"c", dbus.MakeVariant(true)}}},
		"struct variant": {struct {
			V dbus.Variant
			W []dbus.Variant
		}{dbus.MakeVariant(byte(1)), []dbus.Variant{dbus.MakeVariant("a"), dbus.MakeVariant(int64(2))}}},
		"many": {byte(1), true, int16(2), uint16(3), int32(4), uint32(5), int64(6), uint64(7), 8.0, "s",
			dbus.ObjectPath("/o"), dbus.ParseSignatureMust("v"), dbus.MakeVariant(byte(1))},
	}
}

func TestAppendMessageMatchesGodbus(t *testing.T) {
	for name, body := range testBodies() {
		t.Run(name, func(t *testing.T) { sameAsGodbus(t, reply(body...)) })
	}
	t.Run("no destination", func(t *testing.T) {
		m := reply("x")
		m.Destination = ""
		sameAsGodbus(t, m)
	})
	t.Run("flags", func(t *testing.T) {
		m := reply(uint32(1))
		m.Flags = byte(dbus.FlagNoAutoStart)
		sameAsGodbus(t, m)
	})
}

func TestAppendMessageError(t *testing.T) {
	m := &outMessage{Type: TypeError, Serial: 3, ReplySerial: 9, Destination: "org.example.Peer",
		ErrorName: "org.freedesktop.machine1.NoSuchMachine", Body: []any{"No machine 'x' known"}}
	sameAsGodbus(t, m)
	out, err := appendMessage(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := dbus.DecodeMessage(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if got.Type != dbus.TypeError {
		t.Errorf("type %v", got.Type)
	}
	if name, _ := got.Headers[dbus.FieldErrorName].Value().(string); name != m.ErrorName {
		t.Errorf("error name %q", name)
	}
	if rs, _ := got.Headers[dbus.FieldReplySerial].Value().(uint32); rs != 9 {
		t.Errorf("reply serial %d", rs)
	}
	if !reflect.DeepEqual(got.Body, m.Body) {
		t.Errorf("body %v", got.Body)
	}

	m.Body = nil // an error without a message
	sameAsGodbus(t, m)
}

// The message aligns relative to its own start, not to b's.
// Signals: path, interface and member in the header, no reply serial.
func TestAppendMessageSignal(t *testing.T) {
	signal := func(body ...any) *outMessage {
		return &outMessage{Type: TypeSignal, Serial: 9, Path: "/org/freedesktop/machine1", Interface: "org.freedesktop.machine1.Manager", Member: "MachineNew", Body: body}
	}
	sameAsGodbus(t, signal("bench-1", dbus.ObjectPath("/org/freedesktop/machine1/machine/bench_2d1")))
	sameAsGodbus(t, signal())
	withDest := signal("x")
	withDest.Destination = ":1.7"
	sameAsGodbus(t, withDest)
	for name, m := range map[string]*outMessage{
		"bad path":         {Type: TypeSignal, Serial: 1, Path: "/a/", Interface: "a.b", Member: "C"},
		"no path":          {Type: TypeSignal, Serial: 1, Interface: "a.b", Member: "C"},
		"bad interface":    {Type: TypeSignal, Serial: 1, Path: "/a", Interface: "ab", Member: "C"},
		"bad member":       {Type: TypeSignal, Serial: 1, Path: "/a", Interface: "a.b", Member: "C.D"},
		"digit member":     {Type: TypeSignal, Serial: 1, Path: "/a", Interface: "a.b", Member: "1C"},
		"reply serial":     {Type: TypeSignal, Serial: 1, ReplySerial: 3, Path: "/a", Interface: "a.b", Member: "C"},
		"path on a reply":  {Type: TypeMethodReturn, Serial: 1, ReplySerial: 3, Path: "/a"},
		"zero serial":      {Type: TypeSignal, Path: "/a", Interface: "a.b", Member: "C"},
		"method call type": {Type: TypeMethodCall, Serial: 1, ReplySerial: 3},
	} {
		if _, err := appendMessage(nil, m); err == nil || errors.Is(err, errUnencodable) {
			t.Errorf("%s: %v, want an invalid-message error", name, err)
		}
	}
}

func TestAppendMessageAfterBytes(t *testing.T) {
	m := reply(byte(1), uint64(2), byte(3), machineList(3), byte(4), map[string]dbus.Variant{"a": dbus.MakeVariant(uint64(1))})
	alone, err := appendMessage(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 9; n++ {
		prefix := bytes.Repeat([]byte{0xAA}, n)
		out, err := appendMessage(prefix, m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out[:n], prefix) {
			t.Fatalf("prefix %d overwritten", n)
		}
		if !bytes.Equal(out[n:], alone) {
			t.Fatalf("after %d bytes: % x\nwant % x", n, out[n:], alone)
		}
		got, err := dbus.DecodeMessage(bytes.NewReader(out[n:]))
		if err != nil {
			t.Fatalf("after %d bytes: %v", n, err)
		}
		if len(got.Body) != 6 {
			t.Fatalf("after %d bytes: body %v", n, got.Body)
		}
	}
	// Two messages back to back in one buffer, as the relay writes them.
	two, err := appendMessage(alone, reply("second"))
	if err != nil {
		t.Fatal(err)
	}
	rd := bytes.NewReader(two)
	for i := range 2 {
		if _, err := dbus.DecodeMessage(rd); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if rd.Len() != 0 {
		t.Fatalf("%d bytes left over", rd.Len())
	}
}

// nestVariants wraps "x" n times.
func nestVariants(n int) dbus.Variant {
	return wrapVariants("x", n).(dbus.Variant)
}

// wrapVariants puts x n containers deep.
func wrapVariants(x any, n int) any {
	for range n {
		x = dbus.MakeVariant(x)
	}
	return x
}

func nestSlices(n int) any {
	var v any = "x"
	for range n {
		v = []any{v}
	}
	return v
}

func TestAppendMessageRefuses(t *testing.T) {
	type fdField struct {
		Name string
		FD   dbus.UnixFD
	}
	type empty struct{ hidden int }
	var nilPtr *inner
	deepType := reflect.New(reflect.SliceOf(reflect.TypeFor[byte]()))
	for range 33 {
		deepType = reflect.New(reflect.SliceOf(deepType.Elem().Type()))
	}
	unencodable := map[string][]any{
		"fd":                  {dbus.UnixFD(3)},
		"fd index":            {dbus.UnixFDIndex(0)},
		"fd in variant":       {dbus.MakeVariant(dbus.UnixFD(3))},
		"fd in struct slice":  {[]fdField{{"a", 3}}},
		"fd in empty slice":   {[]fdField{}},
		"fd in av":            {[]any{"a", dbus.UnixFD(1)}},
		"fd in a{sv}":         {map[string]any{"fd": dbus.UnixFD(1)}},
		"fd in nested var":    {map[string]dbus.Variant{"v": dbus.MakeVariant(dbus.MakeVariant([]dbus.UnixFD{1}))}},
		"nil":                 {nil},
		"nil in av":           {[]any{nil}},
		"nil pointer":         {nilPtr},
		"nil interface field": {withIface{"a", nil}},
		"zero variant":        {dbus.Variant{}},
		"no exported fields":  {empty{}},
		"chan":                {make(chan int)},
		"func":                {func() {}},
		"bool key":            {map[bool]string{true: "x"}},
		"complex":             {complex(1, 2)},
		"float32":             {float32(1)},
		"int8":                {int8(1)},
		"deep variants":       {nestVariants(65)},
		"deep slices":         {nestSlices(33)},
		"33 arrays":           {deepType.Elem().Interface()},
	}
	for name, body := range unencodable {
		t.Run(name, func(t *testing.T) {
			in := []byte("prefix")
			out, err := appendMessage(in, reply(body...))
			if !errors.Is(err, errUnencodable) {
				t.Fatalf("err = %v, want errUnencodable", err)
			}
			if len(out) != len(in) {
				t.Errorf("left %d bytes behind", len(out)-len(in))
			}
		})
	}

	type pathHolder struct{ P dbus.ObjectPath }
	invalid := map[string][]any{
		"utf8":                {"a\xffb"},
		"nul":                 {"a\x00b"},
		"utf8 in struct":      {[]machineEntry{{Name: "\xc3"}}},
		"nul in variant":      {dbus.MakeVariant("\x00")},
		"utf8 in a{ss} key":   {map[string]string{"\xff": "a"}},
		"nul in as":           {[]string{"ok", "\x00"}},
		"surrogate":           {"\xed\xa0\x80"},
		"path in struct":      {pathHolder{"/a/"}},
		"path in ao":          {[]dbus.ObjectPath{"/ok", "no"}},
		"path in variant":     {dbus.MakeVariant(dbus.ObjectPath("//"))},
		"variant mismatch":    {dbus.MakeVariantWithSignature([]any{"a"}, dbus.ParseSignatureMust("(s)"))},
		"variant wrong basic": {dbus.MakeVariantWithSignature(uint32(1), dbus.ParseSignatureMust("i"))},
	}
	for _, p := range []string{"", "a", "/a/", "//", "/a-b", "/a//b", "a/b", "/ä"} {
		invalid["path "+p] = []any{dbus.ObjectPath(p)}
	}
	for name, body := range invalid {
		t.Run(name, func(t *testing.T) {
			_, err := appendMessage(nil, reply(body...))
			if err == nil || errors.Is(err, errUnencodable) {
				t.Fatalf("err = %v, want an invalid-value error", err)
			}
		})
	}

	// godbus refuses the same values, so a fallback to it would not help.
	for name, body := range map[string][]any{
		"utf8": invalid["utf8"], "nul": invalid["nul"], "path /a-b": invalid["path /a-b"],
		"deep variants": unencodable["deep variants"], "deep slices": unencodable["deep slices"],
	} {
		if _, err := godbusEncode(reply(body...)); err == nil {
			t.Errorf("%s: godbus encodes it", name)
		}
	}
	// The deepest nesting godbus accepts is accepted here too.
	sameAsGodbus(t, reply(nestVariants(64)))
	sameAsGodbus(t, reply(nestSlices(32)))

	badHeaders := map[string]func(m *outMessage){
		"serial":             func(m *outMessage) { m.Serial = 0 },
		"reply serial":       func(m *outMessage) { m.ReplySerial = 0 },
		"type":               func(m *outMessage) { m.Type = TypeSignal },
		"flags":              func(m *outMessage) { m.Flags = 0x80 },
		"destination":        func(m *outMessage) { m.Destination = "no-dots" },
		"destination digit":  func(m *outMessage) { m.Destination = "org.1x" },
		"destination unique": func(m *outMessage) { m.Destination = ":1..2" },
		"error name on reply": func(m *outMessage) {
			m.ErrorName = "org.example.Error"
		},
		"no error name": func(m *outMessage) { m.Type = TypeError },
		"bad error name": func(m *outMessage) {
			m.Type, m.ErrorName = TypeError, "org.example.Bad-Name"
		},
	}
	for name, change := range badHeaders {
		m := reply("x")
		change(m)
		if _, err := appendMessage(nil, m); err == nil || errors.Is(err, errUnencodable) {
			t.Errorf("%s: err = %v", name, err)
		}
	}

	long := make([]any, 0, 300)
	for range 300 {
		long = append(long, byte(0))
	}
	if _, err := appendMessage(nil, reply(long...)); err == nil {
		t.Error("body signature of 300 accepted")
	}
}

// Near godbus's depth limit, each kind of value is refused exactly where
// godbus refuses it.
func TestAppendMessageDepthLikeGodbus(t *testing.T) {
	values := map[string]any{
		"s": "x", "ay": []byte{1}, "ay empty": []byte{}, "as": []string{"a"}, "as empty": []string{},
		"ao": []dbus.ObjectPath{"/"}, "av": []any{"x"}, "a(ssso)": machineList(1), "(yt)": inner{1, 2},
		"(sv)": withIface{"a", "b"}, "a{ss}": map[string]string{"a": "b"}, "a{ss} empty": map[string]string{},
		"a{sv}": map[string]dbus.Variant{"a": dbus.MakeVariant("b")}, "a{sv} any": map[string]any{"a": "b"},
		"a{us}": map[uint32]string{1: "a"}, "aq": []uint16{1}, "aay": [][]byte{{1}}, "v": dbus.MakeVariant("x"),
	}
	for name, x := range values {
		for n := 58; n <= 66; n++ {
			m := reply(wrapVariants(x, n))
			ours, err := appendMessage(nil, m)
			theirs, gerr := godbusEncode(m)
			switch {
			case (err == nil) != (gerr == nil):
				t.Fatalf("%s at depth %d: ours %v, godbus %v", name, n, err, gerr)
			case err != nil:
				if !errors.Is(err, errUnencodable) {
					t.Fatalf("%s at depth %d: %v", name, n, err)
				}
			case decodes(theirs):
				sameAsGodbus(t, m)
			default:
				// godbus's decoder refuses an empty container at depth 64,
				// which its encoder and dbus-daemon accept.
				if !bytes.Equal(bodyOf(ours), bodyOf(theirs)) {
					t.Fatalf("%s at depth %d: body\n% x\nwant\n% x", name, n, bodyOf(ours), bodyOf(theirs))
				}
			}
		}
	}
}

func decodes(msg []byte) bool {
	_, err := dbus.DecodeMessage(bytes.NewReader(msg))
	return err == nil
}

// The fast checks agree with godbus's and the standard library's on every
// byte value in every position, and on slashes anywhere.
func TestFastChecksExhaustive(t *testing.T) {
	const path = "/org/freedesktop/machine1/x_2d9"
	for i := range len(path) {
		for c := range 256 {
			p := path[:i] + string([]byte{byte(c)}) + path[i+1:]
			if got, want := validPath(p), dbus.ObjectPath(p).IsValid(); got != want {
				t.Fatalf("validPath(%q) = %v, godbus %v", p, got, want)
			}
		}
	}
	for n := range 20 {
		for mask := range 1 << min(n, 12) { // slashes in every arrangement of the first 12
			b := []byte(strings.Repeat("a", n))
			for i := range min(n, 12) {
				if mask&(1<<i) != 0 {
					b[i] = '/'
				}
			}
			if got, want := validPath(string(b)), dbus.ObjectPath(b).IsValid(); got != want {
				t.Fatalf("validPath(%q) = %v, godbus %v", b, got, want)
			}
		}
	}
	for n := range 26 {
		for i := range n {
			for c := range 256 {
				b := []byte(strings.Repeat("x", n))
				b[i] = byte(c)
				want := c != 0 && c < 0x80
				if got := plainASCII(string(b)); got != want {
					t.Fatalf("plainASCII(%q) = %v", b, got)
				}
			}
		}
	}
	if plainASCII(strings.Repeat("x", 5000)) {
		t.Error("plainASCII takes long strings, which must reach the length check")
	}
}

func TestValidNames(t *testing.T) {
	for _, p := range []string{"/", "/a", "/a/b", "/_2d/A9", "/org/freedesktop/machine1"} {
		if !validPath(p) || !dbus.ObjectPath(p).IsValid() {
			t.Errorf("path %q refused", p)
		}
	}
	for _, p := range []string{"", "a", "/a/", "//", "/a-b", "/a//b", "a/b", "/ä", "/a/b/"} {
		if validPath(p) || dbus.ObjectPath(p).IsValid() {
			t.Errorf("path %q accepted", p)
		}
	}
	for _, n := range []string{":1.42", ":1.0", "org.freedesktop.machine1", "a.b", "a-b._c", ":a.1-2"} {
		if !validBusName(n) {
			t.Errorf("bus name %q refused", n)
		}
	}
	for _, n := range []string{"", ":", ":1", "a", "a.", ".a.b", "a..b", "1a.b", "a.1b", "a.b c", strings.Repeat("a.", 128) + "b"} {
		if validBusName(n) {
			t.Errorf("bus name %q accepted", n)
		}
	}
	for _, s := range []string{"", "y", "a{sv}", "a(ssso)", "(i(ii))", "aay", "yyv", "a{oa{sa{sv}}}"} {
		if !validSignature(s) {
			t.Errorf("signature %q refused", s)
		}
	}
	for _, s := range []string{"a", "()", "(", ")", "a{}", "a{s}", "a{vs}", "a{sss}", "{ss}", "a{ss", "(ss", "z",
		strings.Repeat("a", 33) + "y", strings.Repeat("(", 33) + "y" + strings.Repeat(")", 33), strings.Repeat("y", 256)} {
		if validSignature(s) {
			t.Errorf("signature %q accepted", s)
		}
	}
	if !validSignature(strings.Repeat("a", 32)+"y") || !validSignature(strings.Repeat("(", 32)+"y"+strings.Repeat(")", 32)) {
		t.Error("32 levels refused")
	}
}

func TestAppendMessageAllocs(t *testing.T) {
	m := reply(machineList(501))
	buf, err := appendMessage(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	props := reply(map[string]dbus.Variant{"Name": dbus.MakeVariant("m"), "Leader": dbus.MakeVariant(uint32(1)),
		"Id": dbus.MakeVariant([]byte{1, 2}), "Addrs": dbus.MakeVariant([]string{"a"})})
	for name, m := range map[string]*outMessage{"list": m, "props": props} {
		if n := testing.AllocsPerRun(50, func() { buf, _ = appendMessage(buf[:0], m) }); n > 0 {
			t.Errorf("%s: %.0f allocations per message into a large enough buffer", name, n)
		}
	}
}

type fuzzPair struct {
	A string
	B uint32
}

type fuzzStruct struct {
	Data []byte
	Name string
	P    dbus.ObjectPath
}

// validString is godbus's rule for strings, written the obvious way.
func validString(s string) bool { return utf8.ValidString(s) && !strings.Contains(s, "\x00") }

// validErrorName is godbus's isValidInterface, written the obvious way.
func validErrorName(s string) bool {
	elems := strings.Split(s, ".")
	if len(s) == 0 || len(s) > 255 || len(elems) < 2 {
		return false
	}
	for _, e := range elems {
		if e == "" || e[0] >= '0' && e[0] <= '9' {
			return false
		}
		for _, c := range e {
			if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_') {
				return false
			}
		}
	}
	return true
}

// FuzzAppendMessage builds bodies of a few shapes from the input and requires
// that what we encode godbus decodes back to the same values, and that we
// refuse exactly the inputs godbus's rules make invalid. (It does not run
// godbus's encoder: the order of its header map makes coverage random.)
func FuzzAppendMessage(f *testing.F) {
	f.Add(uint8(0), "machine", "/org/a", uint32(1), []byte{1, 2})
	f.Add(uint8(1), "", "", uint32(0), []byte{})
	f.Add(uint8(2), "a\xff", "b\x00", uint32(1<<31), []byte(nil))
	f.Add(uint8(3), "/a/b", "/a-b", uint32(7), []byte("xyz"))
	f.Add(uint8(4), "k", "/k", uint32(9), []byte{0})
	f.Add(uint8(5), "org.example.E", "msg", uint32(3), []byte{})
	f.Add(uint8(6), "/org/freedesktop/machine1/machine/_2d", "", uint32(3), []byte{5, 6, 7})
	f.Fuzz(func(t *testing.T, shape uint8, s1, s2 string, u uint32, bs []byte) {
		bs = append([]byte{}, bs...) // godbus decodes an empty ay as []byte{}
		var body, want []any
		valid := validString(s1) && validString(s2)
		m := reply()
		switch shape % 7 {
		case 0:
			body = []any{s1, u, bs, s2}
			want = body
		case 1:
			body = []any{byte(u), []fuzzPair{{s1, u}, {s2, u + 1}}, uint64(u) << 20}
			want = []any{byte(u), [][]any{{s1, u}, {s2, u + 1}}, uint64(u) << 20}
		case 2:
			body = []any{map[string]dbus.Variant{s1: dbus.MakeVariant(u), s2: dbus.MakeVariant(bs)}}
			want = body
		case 3:
			body = []any{byte(u), dbus.ObjectPath(s1), []any{s2, bs, int16(u)}}
			want = []any{byte(u), dbus.ObjectPath(s1), []dbus.Variant{dbus.MakeVariant(s2), dbus.MakeVariant(bs), dbus.MakeVariant(int16(u))}}
			valid = dbus.ObjectPath(s1).IsValid() && validString(s2)
		case 4:
			st := fuzzStruct{bs, s1, dbus.ObjectPath(s2)}
			body = []any{dbus.MakeVariant(st), uint64(u)}
			want = []any{dbus.MakeVariantWithSignature([]any{bs, s1, dbus.ObjectPath(s2)}, dbus.SignatureOf(st)), uint64(u)}
			valid = validString(s1) && dbus.ObjectPath(s2).IsValid()
		case 5:
			body = []any{[]string{s1, s2}, map[string]string{s1: s2}, bs}
			want = body
			if u%2 == 1 {
				m.Type, m.ErrorName = TypeError, s1
				valid = valid && validErrorName(s1)
			}
		case 6:
			body = []any{byte(u), [][]byte{bs, bs[:len(bs)/2]}, []dbus.ObjectPath{dbus.ObjectPath(s1)}}
			want = body
			valid = dbus.ObjectPath(s1).IsValid()
		}
		m.Body = body
		out, err := appendMessage(nil, m)
		if errors.Is(err, errUnencodable) || (err == nil) != valid {
			t.Fatalf("err = %v, want valid %v for %#v", err, valid, body)
		}
		if err != nil {
			return
		}
		if n, err := messageLen(out); err != nil || n != len(out) {
			t.Fatalf("messageLen = %d, %v; encoded %d bytes", n, err, len(out))
		}
		got, err := dbus.DecodeMessage(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("godbus cannot decode ours: %v", err)
		}
		if got.Type != dbus.Type(m.Type) || got.Serial() != m.Serial {
			t.Errorf("type %v serial %d", got.Type, got.Serial())
		}
		wantHeaders := godbusMessage(m).Headers
		if !reflect.DeepEqual(got.Headers, wantHeaders) {
			t.Errorf("headers %v, want %v", got.Headers, wantHeaders)
		}
		if !reflect.DeepEqual(got.Body, want) {
			t.Errorf("body decodes to\n%#v\nwant\n%#v", got.Body, want)
		}
	})
}

func BenchmarkAppendMessageList501(b *testing.B) {
	m := reply(machineList(501))
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = appendMessage(buf[:0], m); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkGodbusEncodeList501(b *testing.B) {
	msg := godbusMessage(reply(machineList(501)))
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}
