package busconn

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Message types and header field codes of the D-Bus wire format.
const (
	TypeMethodCall   = 1
	TypeMethodReturn = 2
	TypeError        = 3
	TypeSignal       = 4

	fieldPath        = 1
	fieldInterface   = 2
	fieldMember      = 3
	fieldErrorName   = 4
	fieldReplySerial = 5
	fieldDestination = 6
	fieldSignature   = 8
	fieldUnixFDs     = 9
)

// maxMessage is the largest message the D-Bus specification allows (2^27).
const maxMessage = 1 << 27

// fixedHeader is the part of every message before the header fields.
const fixedHeader = 16

var errProtocol = errors.New("malformed D-Bus message")

// Header is what the relay reads from a message's header to decide about fds.
type Header struct {
	Type      byte
	Path      string
	Interface string
	Member    string
	Signature string
	UnixFDs   uint32
}

// messageLen returns the total length of the message that starts b, or 0 when
// fewer than fixedHeader bytes are there yet.
func messageLen(b []byte) (int, error) {
	if len(b) < fixedHeader {
		return 0, nil
	}
	order, err := byteOrder(b[0])
	if err != nil {
		return 0, err
	}
	body := uint64(order.Uint32(b[4:8]))
	fields := uint64(order.Uint32(b[12:16]))
	total := fixedHeader + align8(fields) + body
	if total > maxMessage {
		return 0, fmt.Errorf("message of %d bytes: %w", total, errProtocol)
	}
	return int(total), nil
}

func byteOrder(c byte) (binary.ByteOrder, error) {
	switch c {
	case 'l':
		return binary.LittleEndian, nil
	case 'B':
		return binary.BigEndian, nil
	}
	return nil, fmt.Errorf("byte order %q: %w", c, errProtocol)
}

func align8(n uint64) uint64 { return (n + 7) &^ 7 }

// parseHeader reads the header fields of one complete message. Fields of types
// the header never uses are skipped when their size is known; anything else is
// a protocol error (dbus-daemon forwards only well-formed messages).
func parseHeader(msg []byte) (Header, error) {
	var h Header
	order, err := byteOrder(msg[0])
	if err != nil {
		return h, err
	}
	h.Type = msg[1]
	end := fixedHeader + int(order.Uint32(msg[12:16]))
	if end > len(msg) {
		return h, errProtocol
	}
	pos := fixedHeader
	for pos < end {
		pos = (pos + 7) &^ 7
		if pos+3 > end {
			return h, errProtocol
		}
		code := msg[pos]
		sigLen := int(msg[pos+1])
		if pos+2+sigLen+1 > end || sigLen != 1 {
			return h, errProtocol
		}
		sig := msg[pos+2]
		pos += 2 + sigLen + 1
		switch sig {
		case 's', 'o':
			pos = (pos + 3) &^ 3
			if pos+4 > end {
				return h, errProtocol
			}
			n := int(order.Uint32(msg[pos : pos+4]))
			pos += 4
			if n < 0 || pos+n+1 > end {
				return h, errProtocol
			}
			s := string(msg[pos : pos+n])
			pos += n + 1
			switch code {
			case fieldPath:
				h.Path = s
			case fieldInterface:
				h.Interface = s
			case fieldMember:
				h.Member = s
			}
		case 'g':
			if pos+1 > end {
				return h, errProtocol
			}
			n := int(msg[pos])
			if pos+1+n+1 > end {
				return h, errProtocol
			}
			if code == fieldSignature {
				h.Signature = string(msg[pos+1 : pos+1+n])
			}
			pos += 1 + n + 1
		case 'u':
			pos = (pos + 3) &^ 3
			if pos+4 > end {
				return h, errProtocol
			}
			if code == fieldUnixFDs {
				h.UnixFDs = order.Uint32(msg[pos : pos+4])
			}
			pos += 4
		case 'y':
			pos++
		default:
			return h, fmt.Errorf("header field %d of type %q: %w", code, sig, errProtocol)
		}
	}
	return h, nil
}
