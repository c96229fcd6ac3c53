package varlink

import (
	"encoding/json"
	"errors"
	"strings"
)

// envelope is a call's frame: which method, its parameters (a slice of the
// message, not a copy) and its flags.
type envelope struct {
	Method string
	// Parameters is nil when absent or null; it is returned by value, so that
	// a call's parameters cost no holder of their own (the Call keeps them).
	Parameters json.RawMessage
	More       bool
	Oneway     bool
	Upgrade    bool
}

var errEnvelope = errors.New("malformed message envelope")

var envelopeKeys = []string{"method", "parameters", "more", "oneway", "upgrade"}

// envelopeKey is one bit per envelope key: the keys of every call are told
// apart, and their repetition found, without making a string of any of them.
type envelopeKey uint8

const (
	keyMethod envelopeKey = 1 << iota
	keyParameters
	keyMore
	keyOneway
	keyUpgrade
)

func envelopeKeyOf(key []byte) envelopeKey {
	switch string(key) {
	case "method":
		return keyMethod
	case "parameters":
		return keyParameters
	case "more":
		return keyMore
	case "oneway":
		return keyOneway
	case "upgrade":
		return keyUpgrade
	}
	return 0
}

// parseEnvelope is the one parse of a message: it walks the top-level object
// once (see members.go), reading the method and the flags and taking the
// parameters as a slice for the decoder, which checks them as it reads them.
// A key given twice, or a case variant of an envelope key ("Method"), is
// refused: encoding/json would take the last duplicate and match keys
// case-insensitively, so another reader of the same bytes could see another
// call. Unknown keys are ignored, but must be JSON.
func parseEnvelope(msg []byte) (envelope, error) {
	var env envelope
	var known envelopeKey // the envelope keys seen
	var others keySet     // the other keys seen, which only extensions send
	err := eachMember(msg, func(key, v []byte) error {
		k := envelopeKeyOf(key)
		if k != 0 {
			if known&k != 0 {
				return errEnvelope
			}
			known |= k
		} else if others.add(string(key)) {
			return errEnvelope
		}
		switch k {
		case keyMethod:
			if len(v) == 0 || v[0] != '"' {
				return errEnvelope
			}
			if s, ok := plainString(v); ok {
				env.Method = s
				break
			}
			var s string
			if json.Unmarshal(v, &s) != nil {
				return errEnvelope
			}
			env.Method = s
		case keyParameters:
			if !isNull(v) {
				env.Parameters = v
			}
		case keyMore, keyOneway, keyUpgrade:
			var b bool
			switch string(v) {
			case "true":
				b = true
			case "false", "null":
			default:
				return errEnvelope
			}
			switch k {
			case keyMore:
				env.More = b
			case keyOneway:
				env.Oneway = b
			default:
				env.Upgrade = b
			}
		default:
			for _, name := range envelopeKeys {
				if strings.EqualFold(string(key), name) {
					return errEnvelope
				}
			}
			if !json.Valid(v) {
				return errEnvelope
			}
		}
		return nil
	})
	if err != nil || env.Method == "" {
		return env, errEnvelope
	}
	return env, nil
}
