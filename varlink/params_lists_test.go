package varlink

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func intArray(n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat("1,", n), ",") + "]"
}

func strArray(n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat(`"a",`, n), ",") + "]"
}

func decodeOne(t *testing.T, f Field, param string) error {
	t.Helper()
	raw := json.RawMessage(`{"` + f.name + `":` + param + `}`)
	return DecodeParams(&raw, f)
}

// List fields are refused past their bound, naming the field, and accepted at it.
func TestListFieldBounds(t *testing.T) {
	var ints []int
	var strs []string
	for _, tc := range []struct {
		desc  string
		field Field
		param string
		ok    bool
	}{
		{"ints at the bound", IntListField("list", &ints, 1, 10, 3), intArray(3), true},
		{"ints past the bound", IntListField("list", &ints, 1, 10, 3), intArray(4), false},
		{"empty ints", IntListField("list", &ints, 1, 10, 3), "[]", true},
		{"ints out of range", IntListField("list", &ints, 1, 10, 3), "[11]", false},
		{"ints not an array", IntListField("list", &ints, 1, 10, 3), "1", false},
		{"strings at the bound", StrListField("list", &strs, 3), strArray(3), true},
		{"strings past the bound", StrListField("list", &strs, 3), strArray(4), false},
		{"strings not strings", StrListField("list", &strs, 3), "[1]", false},
		{"strings not an array", StrListField("list", &strs, 3), `{"a":1}`, false},
	} {
		err := decodeOne(t, tc.field, tc.param)
		if tc.ok {
			if err != nil {
				t.Errorf("%s: %v", tc.desc, err)
			}
			continue
		}
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Name != "list" {
			t.Errorf("%s: got %v, want invalid parameter list", tc.desc, err)
		}
	}
	if err := decodeOne(t, IntListField("list", &ints, 1, 10, 3), "[1,2,3]"); err != nil || len(ints) != 3 || ints[2] != 3 {
		t.Errorf("decoded %v, %v", ints, err)
	}
}

// A message-sized array of small numbers is refused without being decoded into
// millions of elements.
func TestHugeListRefusedWhileDecoding(t *testing.T) {
	var ints []int
	err := decodeOne(t, IntListField("ifIndices", &ints, 1, 1<<31-1, 256), intArray(8<<20))
	var pe *ParamError
	if !errors.As(err, &pe) || pe.Name != "ifIndices" {
		t.Fatalf("got %v, want invalid parameter ifIndices", err)
	}
	if ints != nil {
		t.Errorf("destination written: %d elements", len(ints))
	}
}
