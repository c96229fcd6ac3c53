package resolvehook

import (
	"encoding/base64"
	"encoding/binary"
	"strings"

	"golang.org/x/sys/unix"
)

// DNS numbers the hook deals in.
const (
	classIN         = 1
	typeA           = 1
	typeAAAA        = 28
	rcodeOK         = 0
	rcodeNoSuchName = 3
)

// addressTTL is the time to live of a machine's address records: none, as
// they are made afresh from the machine's namespace at each lookup and a
// resolver must not keep them once the machine is gone.
const addressTTL = 0

type resourceKey struct {
	Class int    `json:"class"`
	Type  int    `json:"type"`
	Name  string `json:"name"`
}

type resourceRecord struct {
	Key     resourceKey `json:"key"`
	Address []int       `json:"address"`
}

type answer struct {
	RR  resourceRecord `json:"rr"`
	Raw string         `json:"raw"`
}

// addressType is the record type of an address family's addresses.
func addressType(family int) int {
	if family == unix.AF_INET6 {
		return typeAAAA
	}
	return typeA
}

// addressAnswer is one A or AAAA record of name.
func addressAnswer(name string, family int, addr []byte) answer {
	ints := make([]int, len(addr))
	for i, b := range addr {
		ints[i] = int(b)
	}
	key := resourceKey{Class: classIN, Type: addressType(family), Name: name}
	return answer{
		RR:  resourceRecord{Key: key, Address: ints},
		Raw: base64.StdEncoding.EncodeToString(wireRecord(key, addr)),
	}
}

// wireRecord encodes a record in DNS wire format (RFC 1035 §4.1.3): the owner
// name as length-prefixed labels, type, class, TTL, then the data. Machine
// names are host names (labels of at most 63 bytes, no escapes), so they
// encode label by label.
func wireRecord(key resourceKey, rdata []byte) []byte {
	b := make([]byte, 0, len(key.Name)+2+10+len(rdata))
	for _, label := range strings.Split(key.Name, ".") {
		if label == "" {
			continue
		}
		b = append(b, byte(len(label)))
		b = append(b, label...)
	}
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(key.Type))
	b = binary.BigEndian.AppendUint16(b, uint16(key.Class))
	b = binary.BigEndian.AppendUint32(b, addressTTL)
	b = binary.BigEndian.AppendUint16(b, uint16(len(rdata)))
	return append(b, rdata...)
}
