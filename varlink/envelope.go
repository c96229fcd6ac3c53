package varlink

import (
	"encoding/json"
	"errors"
	"strings"
)

// envelope is a call's frame: which method, its parameters (a slice of the
// message, not a copy) and its flags.
type envelope struct {
	Method     string
	Parameters *json.RawMessage // nil when absent or null
	More       bool
	Oneway     bool
	Upgrade    bool
}

var errEnvelope = errors.New("malformed message envelope")

var envelopeKeys = []string{"method", "parameters", "more", "oneway", "upgrade"}

// parseEnvelope is the one parse of a message: it walks the top-level object
// once (see members.go), reading the method and the flags and taking the
// parameters as a slice for the decoder, which checks them as it reads them.
// A key given twice, or a case variant of an envelope key ("Method"), is
// refused: encoding/json would take the last duplicate and match keys
// case-insensitively, so another reader of the same bytes could see another
// call. Unknown keys are ignored, but must be JSON.
func parseEnvelope(msg []byte) (envelope, error) {
	var env envelope
	var set keySet
	err := eachMember(msg, func(key string, v []byte) error {
		if set.add(key) {
			return errEnvelope
		}
		switch key {
		case "method":
			if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &env.Method) != nil {
				return errEnvelope
			}
		case "parameters":
			if !isNull(v) {
				raw := json.RawMessage(v)
				env.Parameters = &raw
			}
		case "more", "oneway", "upgrade":
			var b bool
			switch string(v) {
			case "true":
				b = true
			case "false", "null":
			default:
				return errEnvelope
			}
			switch key {
			case "more":
				env.More = b
			case "oneway":
				env.Oneway = b
			default:
				env.Upgrade = b
			}
		default:
			for _, k := range envelopeKeys {
				if strings.EqualFold(key, k) {
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
