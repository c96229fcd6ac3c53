package busconn

import "errors"

// Interim until the fast encoder lands.
type outMessage struct {
	Type        byte
	Flags       byte
	Serial      uint32
	ReplySerial uint32
	Destination string
	ErrorName   string
	Body        []any
}

var errUnencodable = errors.New("busconn: value not encodable here")

func appendMessage(b []byte, m *outMessage) ([]byte, error) { return b, errUnencodable }
