package machine

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/machined-go/machined/varlink"
)

// processID is the ProcessId type, which clients may also send as a bare integer.
type processID struct {
	set     bool
	pid     int64
	pidfdID int64
	bootID  string
}

func processIDField(name string, dst *processID) varlink.Field {
	return varlink.FuncField(name, func(v json.RawMessage) error {
		if n, err := varlink.ParseInt(v); err == nil {
			if n < 0 || n > math.MaxInt32 {
				return fmt.Errorf("out of range")
			}
			*dst = processID{set: true, pid: n}
			return nil
		}
		raw := json.RawMessage(v)
		var p processID
		if err := varlink.DecodeParams(&raw,
			varlink.IntField("pid", &p.pid, nil, true, 0, math.MaxInt32),
			varlink.IntField("pidfdId", &p.pidfdID, nil, false, 0, math.MaxInt64),
			varlink.StrField("bootId", &p.bootID, false),
		); err != nil {
			return err
		}
		p.set = true
		*dst = p
		return nil
	})
}

// parseMachineID accepts 32 hex digits or the dashed UUID form.
func parseMachineID(s string) ([16]byte, bool) {
	var id [16]byte
	if len(s) == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-' {
		s = strings.ReplaceAll(s, "-", "")
	}
	if len(s) != 32 {
		return id, false
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return id, false
	}
	copy(id[:], b)
	return id, true
}
