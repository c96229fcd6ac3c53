package varlink

import (
	"encoding/json"
	"reflect"
	"testing"
)

func members(t *testing.T, s string) ([][2]string, error) {
	t.Helper()
	if !json.Valid([]byte(s)) {
		t.Fatalf("test input is not valid JSON: %s", s)
	}
	var out [][2]string
	err := eachMember([]byte(s), func(kb, v []byte) error {
		k := string(kb)
		out = append(out, [2]string{k, string(v)})
		return nil
	})
	return out, err
}

func TestEachMember(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want [][2]string
	}{
		{`{}`, nil},
		{` { } `, nil},
		{`{"a":1}`, [][2]string{{"a", "1"}}},
		{`{"method":"x.Y","parameters":{"a":[1,{"b":"}"}],"c":"\"{"},"more":true}`,
			[][2]string{{"method", `"x.Y"`}, {"parameters", `{"a":[1,{"b":"}"}],"c":"\"{"}`}, {"more", "true"}}},
		{"{ \"k\" :\t-1.5e3 ,\n\"n\": null }", [][2]string{{"k", "-1.5e3"}, {"n", "null"}}},
		{`{"\u006dethod":"a","me\"th":[]}`, [][2]string{{"method", `"a"`}, {`me"th`, "[]"}}},
		{`{"a":1,"a":2}`, [][2]string{{"a", "1"}, {"a", "2"}}},
	} {
		got, err := members(t, tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{`[]`, `"x"`, `1`, `null`} {
		if _, err := members(t, in); err != errNotObject {
			t.Errorf("%s: %v, want errNotObject", in, err)
		}
	}
}

// FuzzEachMember checks the walk against encoding/json on every valid object:
// the same keys, in order, with values that decode to the same thing.
func FuzzEachMember(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"b":[{"c":"]"}],"\u0041":"\\"}`, `{"p":{"q":null},"r":true}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		var want map[string]json.RawMessage
		isObject := json.Unmarshal(data, &want) == nil && want != nil
		got := map[string]string{}
		err := eachMember(data, func(kb, v []byte) error {
			k := string(kb)
			if !json.Valid(v) {
				t.Fatalf("value of %q is not a JSON value: %q", k, v)
			}
			got[k] = string(v)
			return nil
		})
		if !isObject {
			if err == nil && len(got) > 0 {
				t.Fatalf("members found in a non-object %q", data)
			}
			return
		}
		if err != nil {
			t.Fatalf("%q: %v", data, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: keys %v, want %v", data, got, want)
		}
		for k, v := range want {
			var a, b any
			json.Unmarshal(v, &a)
			json.Unmarshal([]byte(got[k]), &b)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("%q: member %q = %s, want %s", data, k, got[k], v)
			}
		}
	})
}
