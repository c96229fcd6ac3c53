package varlink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestDuplicateKey(t *testing.T) {
	many := func(n int, dup string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		b.WriteString(`"` + dup + `":true}`)
		return b.String()
	}
	for _, tc := range []struct{ in, dup string }{
		{`{"a":1,"a":2}`, "a"},
		{`{"a":{"x":1},"b":[1],"a":null}`, "a"},
		{`{"a":"}\"{,","b":1,"a":2}`, "a"},         // braces and quotes inside strings
		{`{"method":1,"m\u0065thod":2}`, "method"}, // the same key escaped
		{` { "a" : [ {"a":1} ] , "a" : 2 } `, "a"},
		{"{\"\xff\":1,\"\xfe\":2}", "\ufffd"}, // invalid UTF-8 reads as U+FFFD
		{many(7, "k0"), "k0"},                 // found by the scan of the first keys
		{many(1000, "k3"), "k3"},              // found by the map past them
		{many(1000, "k999"), "k999"},
	} {
		if !json.Valid([]byte(tc.in)) {
			t.Fatalf("bad test input %s", tc.in)
		}
		if dup, found := duplicateKey([]byte(tc.in)); !found || dup != tc.dup {
			t.Errorf("%.60s: %q %v, want duplicate %s", tc.in, dup, found, tc.dup)
		}
	}
	for _, in := range []string{
		many(1000, "k1000"),
		`{"a":{"a":1},"b":{"a":2}}`, // nested objects are their own scope
		`{"a":["a","a"],"b":"a"}`,   // values are not keys
		`{}`,
	} {
		if dup, found := duplicateKey([]byte(in)); found {
			t.Errorf("%.60s: duplicate %q reported", in, dup)
		}
	}
}

func TestDecodeParamsDuplicateNamesTheKey(t *testing.T) {
	var s string
	var n int64
	raw := json.RawMessage(`{"name":"a","n":1,"name":"b"}`)
	err := DecodeParams(&raw, StrField("name", &s, false), IntField("n", &n, nil, false, 0, 10))
	var pe *ParamError
	if !errors.As(err, &pe) || pe.Name != "name" {
		t.Errorf("got %v, want invalid parameter name", err)
	}
}

func TestQuotedNumberIsNotAnInteger(t *testing.T) {
	for _, in := range []string{`"12"`, `"-1"`, `" 1"`, `true`, `[1]`, `{"a":1}`} {
		if n, err := ParseInt(json.RawMessage(in)); err == nil {
			t.Errorf("ParseInt(%s) = %d", in, n)
		}
	}
	for in, want := range map[string]int64{`12`: 12, `-3`: -3, `5.0`: 5, `1e3`: 1000} {
		if n, err := ParseInt(json.RawMessage(in)); err != nil || n != want {
			t.Errorf("ParseInt(%s) = %d, %v; want %d", in, n, err, want)
		}
	}
	var l []int
	raw := json.RawMessage(`{"l":[1,"2"]}`)
	if err := DecodeParams(&raw, IntListField("l", &l, 0, 10, 10)); err == nil {
		t.Error("a quoted number inside an integer list accepted")
	}
}

func TestParseEnvelope(t *testing.T) {
	for _, bad := range []string{
		`{"method":"a.b","method":"a.c"}`,
		`{"method":"a.b","Method":"a.c"}`,
		`{"Method":"a.b"}`,
		`{"method":"a.b","MORE":true}`,
		`{"method":"a.b","more":"yes"}`,
		`{"method":5}`,
		`{"parameters":{}}`,
		`{"method":"a.b","parameters":{},"parameters":{}}`,
	} {
		if _, err := parseEnvelope([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	env, err := parseEnvelope([]byte(`{"method":"a.b","parameters":{"x":1},"more":true,"oneway":null,"extension":1}`))
	if err != nil || env.Method != "a.b" || !env.More || env.Oneway || env.Parameters == nil || string(env.Parameters) != `{"x":1}` {
		t.Errorf("got %+v %v", env, err)
	}
}

// referenceDuplicateKey is duplicateKey the slow way, through the token
// decoder.
func referenceDuplicateKey(data []byte) (string, bool) {
	d := json.NewDecoder(bytes.NewReader(data))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return "", false
	}
	seen := map[string]bool{}
	for d.More() {
		tok, _ := d.Token()
		key, _ := tok.(string)
		if seen[key] {
			return key, true
		}
		seen[key] = true
		var v json.RawMessage
		if d.Decode(&v) != nil {
			return "", false
		}
	}
	return "", false
}

// The scan agrees with the token decoder on every valid object.
func FuzzDuplicateKey(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `{"a":"}\"{","b":[{"a":1}],"\u0061":3}`, `{"x":{"y":[1,{"z":2}]},"y":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var obj map[string]json.RawMessage
		if json.Unmarshal(data, &obj) != nil {
			return
		}
		dup, found := duplicateKey(data)
		wantDup, wantFound := referenceDuplicateKey(data)
		if found != wantFound || dup != wantDup {
			t.Fatalf("%q: duplicateKey %q %v, decoder %q %v", data, dup, found, wantDup, wantFound)
		}
	})
}

// duplicateKey reports the first key the object in data (valid JSON) names a
// second time, with the walk and the key set parseEnvelope uses.
func duplicateKey(data []byte) (dup string, found bool) {
	var set keySet
	eachMember(data, func(kb, _ []byte) error {
		key := string(kb)
		if set.add(key) {
			dup, found = key, true
			return errStop
		}
		return nil
	})
	return dup, found
}

// errStop ends duplicateKey's walk at the first repeat.
var errStop = errors.New("stop")
