package varlink

import (
	"encoding/json"
	"errors"
	"strings"
)

// envelope is the part of a message we inspect before dispatching.
type envelope struct {
	Method     string
	Parameters *json.RawMessage
	More       bool
	Oneway     bool
	Upgrade    bool
}

var errEnvelope = errors.New("malformed message envelope")

// parseEnvelope reads the call's keys exactly. varlink/go decodes the same
// message again with encoding/json, which takes the last of duplicate keys and
// matches keys case-insensitively; refusing both here means that what we
// checked is what it dispatches.
func parseEnvelope(msg []byte) (envelope, error) {
	var env envelope
	members, err := objectMembers(msg)
	if err != nil {
		return env, err
	}
	for _, m := range members {
		switch m.key {
		case "method":
			if len(m.val) == 0 || m.val[0] != '"' || json.Unmarshal(m.val, &env.Method) != nil {
				return env, errEnvelope
			}
		case "parameters":
			if !isNull(m.val) {
				raw := m.val
				env.Parameters = &raw
			}
		case "more", "oneway", "upgrade":
			var b bool
			if !isNull(m.val) && json.Unmarshal(m.val, &b) != nil {
				return env, errEnvelope
			}
			switch m.key {
			case "more":
				env.More = b
			case "oneway":
				env.Oneway = b
			default:
				env.Upgrade = b
			}
		default:
			for _, k := range []string{"method", "parameters", "more", "oneway", "upgrade"} {
				if strings.EqualFold(m.key, k) {
					return env, errEnvelope
				}
			}
		}
	}
	if env.Method == "" {
		return env, errEnvelope
	}
	return env, nil
}
