package varlink

import (
	"encoding/json"
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
		gerr := StrField("s", &got, false).decode(json.RawMessage(c))
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
