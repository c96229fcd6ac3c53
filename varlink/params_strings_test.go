package varlink

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// StrField decodes exactly as encoding/json does, whichever path it takes.
func TestStrFieldMatchesEncodingJSON(t *testing.T) {
	cases := []string{
		`""`, `"vu-bench7-1000"`, `"io.systemd.Machine"`, `"a\"b"`, `"a\\b"`, `"tab\there"`,
		`"\u00e9t\u00e9"`, `"été"`, `"日本"`, "\"bad\xffutf8\"", "\"ctl\x01\"", `"a"b"`, `"unterminated`,
		`"\ud83d\ude00"`, `"😀"`, `"x" `, `"/"`, `"<&>"`,
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab\"\\/\x00\x1f\x7f\xc3\xa9\xff u")
	for range 2000 {
		b := []byte{'"'}
		for range rng.IntN(8) {
			b = append(b, alphabet[rng.IntN(len(alphabet))])
		}
		cases = append(cases, string(append(b, '"')))
	}
	for _, c := range cases {
		var want string
		werr := json.Unmarshal([]byte(c), &want)
		var got string
		gerr := func() error { f := StrField("s", &got, false); return f.run(json.RawMessage(c)) }()
		if (werr == nil) != (gerr == nil) || got != want {
			t.Errorf("%q: got %q, %v; encoding/json %q, %v", c, got, gerr, want, werr)
		}
	}
}

// A plain string costs the string and nothing else.
func TestStrFieldPlainStringAllocations(t *testing.T) {
	raw := json.RawMessage(`{"userName":"vu-bench7-1000","service":"io.systemd.Machine"}`)
	var name, svc string
	allocs := testing.AllocsPerRun(200, func() {
		if err := DecodeParams(&raw, StrField("userName", &name, false), StrField("service", &svc, false)); err != nil {
			t.Fatal(err)
		}
	})
	// The two strings, the fields' closures and the bookkeeping of keys seen;
	// encoding/json adds its decoder state per string.
	if allocs > 7 {
		t.Errorf("DecodeParams of two plain strings: %.0f allocations", allocs)
	}
}

// Decoding the fields of a userdb lookup costs the strings it keeps and
// nothing per field: the fields hold their destinations themselves.
func TestDecodeParamsFieldsCostNoAllocations(t *testing.T) {
	raw := json.RawMessage(`{"uid":1001000,"userName":"vu-bench7-1000","uidMin":0,"uidMax":4294967295,"service":"io.systemd.Machine"}`)
	var name, svc, uuid string
	var fuzzy, disp []string
	var id, lo, hi int64
	var hasID, hasLo, hasHi bool
	allocs := testing.AllocsPerRun(200, func() {
		if err := DecodeParams(&raw,
			IntField("uid", &id, &hasID, false, 0, math.MaxUint32),
			StrField("userName", &name, false),
			StrListField("fuzzyNames", &fuzzy, 64),
			StrListField("dispositionMask", &disp, 64),
			IntField("uidMin", &lo, &hasLo, false, 0, math.MaxUint32),
			IntField("uidMax", &hi, &hasHi, false, 0, math.MaxUint32),
			StrField("uuid", &uuid, false),
			StrField("service", &svc, false),
		); err != nil {
			t.Fatal(err)
		}
	})
	// The two strings.
	if allocs > 2 {
		t.Errorf("DecodeParams of a userdb lookup: %.0f allocations", allocs)
	}
}

// The frame of a call costs its method's name: the keys are told apart
// without a string made of any of them, and the parameters are a slice of the
// message.
func TestParseEnvelopeAllocations(t *testing.T) {
	msg := []byte(`{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{"uid":1001000,"service":"io.systemd.Machine"},"more":false}`)
	allocs := testing.AllocsPerRun(200, func() {
		if env, err := parseEnvelope(msg); err != nil || env.Method == "" {
			t.Fatal(env, err)
		}
	})
	if allocs > 1 {
		t.Errorf("parseEnvelope: %.0f allocations", allocs)
	}
}
