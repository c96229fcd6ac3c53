package varlink

import (
	"encoding/json"
	"math"
	"testing"
)

// decodeSample decodes msg as the dispatcher and a strict handler would, with a
// field of every kind; ok means the call would be answered without an error.
func decodeSample(msg []byte) (name string, n int64, ok bool) {
	env, err := parseEnvelope(msg)
	if err != nil {
		return "", 0, false
	}
	var (
		b   bool
		l   []int
		s   []string
		sub int64
	)
	err = DecodeParams(&env.Parameters,
		StrField("name", &name, false),
		IntField("n", &n, nil, false, math.MinInt64, math.MaxInt64),
		BoolField("b", &b),
		IntListField("l", &l, 0, 100, 8),
		StrListField("s", &s, 8),
		IgnoredField("ign"),
		FuncField("sub", func(v json.RawMessage) error {
			raw := v
			return DecodeParams(&raw, IntField("x", &sub, nil, true, 0, 9))
		}),
	)
	return name, n, err == nil
}

func TestLazyWalkRefusesWhatIsNotJSON(t *testing.T) {
	for _, bad := range []string{
		`{"method":"a.b","parameters":{"name":"x",}}`,
		`{"method":"a.b","parameters":{"name":"x"}`,
		`{"method":"a.b","parameters":{"l":[1,2}}}`,
		`{"method":"a.b","parameters":{"l":[1 2]}}`,
		`{"method":"a.b","parameters":{"n":01}}`,
		`{"method":"a.b","parameters":{"n":1.}}`,
		`{"method":"a.b","parameters":{"n":+1}}`,
		`{"method":"a.b","parameters":{"ign":[1,}}}`,
		`{"method":"a.b","parameters":{"ign":tru}}`,
		`{"method":"a.b","parameters":{"sub":{"x":1,}}}`,
		`{"method":"a.b","parameters":{"name":"x"}} trailing`,
		`{"method":"a.b","extension":[1,]}`,
		`{"method":"a.b","parameters":{"b":true}`,
		"{\"method\":\"a.b\",\"parameters\":{\"name\":\"a\x01b\"}}",
	} {
		if json.Valid([]byte(bad)) {
			t.Fatalf("test input is JSON: %s", bad)
		}
		if _, _, ok := decodeSample([]byte(bad)); ok {
			t.Errorf("accepted: %s", bad)
		}
	}
	if name, n, ok := decodeSample([]byte(`{"method":"a.b","parameters":{"name":"x\u0041","n":-2e1,"l":[1,2],"s":["a"],"ign":{"q":[null]},"sub":{"x":3},"b":false},"more":false}`)); !ok || name != "xA" || n != -20 {
		t.Errorf("a well-formed call: %q %d %v", name, n, ok)
	}
}

// A 16 MiB list is refused at its first element past the bound, without the
// rest of it being read: what the lazy walk is for.
func TestLazyWalkStopsAtTheBound(t *testing.T) {
	msg := []byte(`{"method":"a.b","parameters":{"l":[1`)
	for len(msg) < 16<<20 {
		msg = append(msg, ",1"...)
	}
	msg = append(msg, "x]}}"...) // not JSON at the very end
	if _, _, ok := decodeSample(msg); ok {
		t.Fatal("accepted")
	}
	env, err := parseEnvelope(msg)
	if err != nil {
		t.Fatalf("envelope: %v", err)
	}
	var l []int
	err = DecodeParams(&env.Parameters, IntListField("l", &l, 0, 100, 8))
	if pe, ok := err.(*ParamError); !ok || pe.Name != "l" {
		t.Errorf("got %v, want the list refused by its bound", err)
	}
}

// Whatever the walk accepts is JSON, and reads as encoding/json reads it.
func FuzzLazyWalk(f *testing.F) {
	for _, s := range []string{
		`{"method":"a.b","parameters":{"name":"x","n":5,"l":[1],"s":["q"],"ign":{},"sub":{"x":1},"b":true}}`,
		`{"method":"a.b","parameters":{"name":"x\"}","n":-0.0e+0}}`,
		`{"parameters":null,"method":"a.b","more":true,"oneway":false}`,
		`{"method":"a.b","parameters":{"l":[1,2,3],"ign":[[{}]]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		name, n, ok := decodeSample(msg)
		if !ok {
			return
		}
		if !json.Valid(msg) {
			t.Fatalf("accepted what is not JSON: %q", msg)
		}
		var ref struct {
			Parameters struct {
				Name string `json:"name"`
				N    int64  `json:"n"`
			} `json:"parameters"`
		}
		if err := json.Unmarshal(msg, &ref); err == nil && (ref.Parameters.Name != name || ref.Parameters.N != n) {
			t.Fatalf("%q: read name %q n %d, encoding/json %q %d", msg, name, n, ref.Parameters.Name, ref.Parameters.N)
		}
	})
}
