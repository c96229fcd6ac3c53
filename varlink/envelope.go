package varlink

import (
	"bytes"
	"encoding/json"
	"errors"
)

// envelope is the part of a message we inspect before dispatching.
type envelope struct {
	Method     string           `json:"method"`
	Parameters *json.RawMessage `json:"parameters"`
	More       bool             `json:"more"`
	Oneway     bool             `json:"oneway"`
	Upgrade    bool             `json:"upgrade"`
}

var errEnvelope = errors.New("malformed message envelope")

var envelopeKeys = []string{"method", "parameters", "more", "oneway", "upgrade"}

// parseEnvelope reads the call's keys exactly. encoding/json (here, and in
// varlink/go, which decodes the message again to dispatch it) takes the last
// of duplicate keys and matches keys case-insensitively; refusing both means
// that what we checked is what gets dispatched.
func parseEnvelope(msg []byte) (envelope, error) {
	var env envelope
	if err := json.Unmarshal(msg, &env); err != nil {
		return env, err
	}
	var set keySet
	bad := false
	forEachKey(msg, func(key []byte) bool {
		bad = set.add(key)
		for _, k := range envelopeKeys {
			bad = bad || (string(key) != k && bytes.EqualFold(key, []byte(k)))
		}
		return !bad
	})
	if bad || env.Method == "" {
		return env, errEnvelope
	}
	return env, nil
}
