package varlink

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// AppendJSONString writes what encoding/json writes, byte for byte.
func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	cases := []string{"", "vu-bench7-1000", "UID 1000 of Container a", `a"b\c`, "<&>", "\b\f\n\r\t\x00\x1f\x7f",
		"été", "日本", "bad\xffutf8", "\xe2\x80\xa8\xe2\x80\xa9", "😀", "\xed\xa0\x80"}
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("ab\"\\<>&/\x00\x08\x0c\x1f\x7f\xc3\xa9\xe2\x80\xa8\xff u")
	for range 3000 {
		b := make([]byte, rng.IntN(10))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		want, _ := json.Marshal(s)
		if got := AppendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("%q: got %s, encoding/json %s", s, got, want)
		}
	}
}

type selfEncoded struct {
	Name string `json:"name"`
	N    uint32 `json:"n"`
}

func (s selfEncoded) AppendJSON(b []byte) []byte {
	b = append(b, `{"name":`...)
	b = AppendJSONString(b, s.Name)
	b = append(b, `,"n":`...)
	b = AppendJSONUint(b, uint64(s.N))
	return append(b, '}')
}

// A reply whose parameters encode themselves is the reply encoding/json makes.
func TestAppendReplyMatchesEncodingJSON(t *testing.T) {
	p := selfEncoded{"x<y", 7}
	for _, r := range []reply{{Parameters: p}, {Parameters: p, Continues: true}, {Parameters: p, Error: "io.systemd.Machine.NoSuchMachine"}} {
		want, err := json.Marshal(reply{Parameters: struct {
			Name string `json:"name"`
			N    uint32 `json:"n"`
		}(p), Continues: r.Continues, Error: r.Error})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendReply(nil, r, p); string(got) != string(want) {
			t.Errorf("got %s, encoding/json %s", got, want)
		}
	}
}
