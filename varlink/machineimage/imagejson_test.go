package machineimage

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/machined-go/machined/service"
)

// List's entries encode themselves; they must read exactly as encoding/json
// would write them, unknown values left out and hostile text escaped alike.
func TestImageJSONMatchesEncodingJSON(t *testing.T) {
	unknown := uint64(math.MaxUint64)
	entries := []service.ImageEntry{
		{Image: service.Image{Name: "plain", Path: "/var/lib/machines/plain", Type: "directory",
			CrTime: 1, Usage: unknown, UsageExclusive: unknown, Limit: unknown, LimitExclusive: unknown}},
		{Image: service.Image{Name: "disk", Path: "/var/lib/machines/disk.raw", Type: "raw", ReadOnly: true,
			CrTime: 1700000000000000, MTime: 1700000000000001, Usage: 0, UsageExclusive: 8192, Limit: 1 << 40, LimitExclusive: math.MaxUint64 - 1}},
		{Image: service.Image{Name: "x<&>\"\\\u2028\x01", Path: "/p/\xff\xfe", Type: "subvolume",
			Usage: unknown, UsageExclusive: unknown, Limit: unknown, LimitExclusive: unknown},
			Metadata: &service.ImageMetadata{Hostname: "h<b>", MachineID: "0123456789abcdef0123456789abcdef",
				MachineInfo: []string{"PRETTY_HOSTNAME=a\tb", "X=\u2029"}, OSRelease: []string{"ID=debian"}}},
		{Image: service.Image{Name: "empty-metadata", Type: "block", Usage: unknown, UsageExclusive: unknown,
			Limit: unknown, LimitExclusive: unknown},
			Metadata: &service.ImageMetadata{MachineInfo: []string{}, OSRelease: nil}},
	}
	for _, e := range entries {
		j := toJSON(e)
		want, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		if got := j.AppendJSON(nil); string(got) != string(want) {
			t.Errorf("AppendJSON\n got %s\nwant %s", got, want)
		}
	}
}
