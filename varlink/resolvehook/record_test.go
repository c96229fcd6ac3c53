package resolvehook

import (
	"bytes"
	"encoding/base64"
	"testing"

	"golang.org/x/sys/unix"
)

// An address record is the name as labels, type, class IN, a zero TTL and the
// address, in DNS wire format, and the decoded form carries the same.
func TestAddressAnswer(t *testing.T) {
	a := addressAnswer("web.lab", unix.AF_INET, []byte{10, 0, 0, 2})
	want := []byte{
		3, 'w', 'e', 'b', 3, 'l', 'a', 'b', 0, // web.lab.
		0, 1, // A
		0, 1, // IN
		0, 0, 0, 0, // TTL
		0, 4, 10, 0, 0, 2,
	}
	raw, err := base64.StdEncoding.DecodeString(a.Raw)
	if err != nil || !bytes.Equal(raw, want) {
		t.Errorf("raw = %v %v, want %v", raw, err, want)
	}
	if a.RR.Key != (resourceKey{Class: 1, Type: 1, Name: "web.lab"}) || len(a.RR.Address) != 4 || a.RR.Address[0] != 10 {
		t.Errorf("rr = %+v", a.RR)
	}
	six := addressAnswer("v6", unix.AF_INET6, bytes.Repeat([]byte{0xfd}, 16))
	raw, _ = base64.StdEncoding.DecodeString(six.Raw)
	if six.RR.Key.Type != 28 || len(raw) != 4+2+2+4+2+16 || raw[4] != 0 || raw[5] != 28 || raw[13] != 16 {
		t.Errorf("AAAA: %+v %v", six.RR.Key, raw)
	}
}
