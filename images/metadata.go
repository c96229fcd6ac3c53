package images

import (
	"context"
	"sync"
)

// Metadata is what an image says about the OS inside it.
type Metadata struct {
	Hostname  string
	MachineID string // 32 lowercase hex digits, or "" when absent or invalid
	// MachineInfo and OSRelease are KEY=VALUE lines in file order.
	MachineInfo []string
	OSRelease   []string
}

type metadataCache struct {
	mu sync.Mutex
}

// Metadata reads the image's metadata, or returns the cached copy while the image
// has not changed since it was read.
func (p *Pool) Metadata(ctx context.Context, img Image) (Metadata, error) {
	return Metadata{}, errNotImplemented
}
