package machineimage

import (
	"math"
	"strconv"

	"github.com/machined-go/machined/service"
	"github.com/machined-go/machined/varlink"
)

// imageJSON is one List reply, fields in IDL order; unknown values (zero
// timestamps, sizes of UINT64_MAX) are left out.
type imageJSON struct {
	Name                  string   `json:"name"`
	Path                  string   `json:"path,omitempty"`
	Type                  string   `json:"type"`
	Class                 string   `json:"class"`
	ReadOnly              bool     `json:"readOnly"`
	CreationTimestamp     *uint64  `json:"creationTimestamp,omitempty"`
	ModificationTimestamp *uint64  `json:"modificationTimestamp,omitempty"`
	Usage                 *uint64  `json:"usage,omitempty"`
	UsageExclusive        *uint64  `json:"usageExclusive,omitempty"`
	Limit                 *uint64  `json:"limit,omitempty"`
	LimitExclusive        *uint64  `json:"limitExclusive,omitempty"`
	Hostname              string   `json:"hostname,omitempty"`
	MachineID             string   `json:"machineId,omitempty"`
	MachineInfo           []string `json:"machineInfo,omitempty"`
	OSRelease             []string `json:"OSRelease,omitempty"`
}

func toJSON(e service.ImageEntry) imageJSON {
	known := func(v uint64, unknown uint64) *uint64 {
		if v == unknown {
			return nil
		}
		return &v
	}
	j := imageJSON{
		Name: e.Name, Path: e.Path, Type: string(e.Type), Class: "machine", ReadOnly: e.ReadOnly,
		CreationTimestamp:     known(e.CrTime, 0),
		ModificationTimestamp: known(e.MTime, 0),
		Usage:                 known(e.Usage, math.MaxUint64),
		UsageExclusive:        known(e.UsageExclusive, math.MaxUint64),
		Limit:                 known(e.Limit, math.MaxUint64),
		LimitExclusive:        known(e.LimitExclusive, math.MaxUint64),
	}
	if md := e.Metadata; md != nil {
		j.Hostname, j.MachineID, j.MachineInfo, j.OSRelease = md.Hostname, md.MachineID, md.MachineInfo, md.OSRelease
	}
	return j
}

// AppendJSON encodes the entry exactly as encoding/json does: List sends one
// per image, and reflection would cost more than the listing itself.
func (j imageJSON) AppendJSON(b []byte) []byte {
	b = append(b, `{"name":`...)
	b = varlink.AppendJSONString(b, j.Name)
	if j.Path != "" {
		b = append(b, `,"path":`...)
		b = varlink.AppendJSONString(b, j.Path)
	}
	b = append(b, `,"type":`...)
	b = varlink.AppendJSONString(b, j.Type)
	b = append(b, `,"class":`...)
	b = varlink.AppendJSONString(b, j.Class)
	b = append(b, `,"readOnly":`...)
	b = strconv.AppendBool(b, j.ReadOnly)
	for _, f := range [...]struct {
		key string
		v   *uint64
	}{
		{`,"creationTimestamp":`, j.CreationTimestamp},
		{`,"modificationTimestamp":`, j.ModificationTimestamp},
		{`,"usage":`, j.Usage},
		{`,"usageExclusive":`, j.UsageExclusive},
		{`,"limit":`, j.Limit},
		{`,"limitExclusive":`, j.LimitExclusive},
	} {
		if f.v != nil {
			b = append(b, f.key...)
			b = varlink.AppendJSONUint(b, *f.v)
		}
	}
	if j.Hostname != "" {
		b = append(b, `,"hostname":`...)
		b = varlink.AppendJSONString(b, j.Hostname)
	}
	if j.MachineID != "" {
		b = append(b, `,"machineId":`...)
		b = varlink.AppendJSONString(b, j.MachineID)
	}
	b = appendStrings(b, `,"machineInfo":`, j.MachineInfo)
	b = appendStrings(b, `,"OSRelease":`, j.OSRelease)
	return append(b, '}')
}

// appendStrings appends key and list as a JSON array, nothing when list is
// empty (omitempty).
func appendStrings(b []byte, key string, list []string) []byte {
	if len(list) == 0 {
		return b
	}
	b = append(b, key...)
	for i, s := range list {
		if i == 0 {
			b = append(b, '[')
		} else {
			b = append(b, ',')
		}
		b = varlink.AppendJSONString(b, s)
	}
	return append(b, ']')
}
