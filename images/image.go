package images

import "strings"

// Type is the kind of an image, as machined reports it.
type Type string

const (
	TypeDirectory Type = "directory"
	TypeSubvolume Type = "subvolume"
	TypeRaw       Type = "raw"
	TypeBlock     Type = "block"
)

// HostName is the name of the image that stands for the host's own root.
const HostName = ".host"

// Image is one discovered image, a snapshot taken when it was looked up.
type Image struct {
	Name     string
	Path     string
	Type     Type
	ReadOnly bool
	// CrTime and MTime are µs since the epoch; 0 when unknown.
	CrTime, MTime uint64
	// Sizes in bytes; math.MaxUint64 when unknown.
	Usage, UsageExclusive, Limit, LimitExclusive uint64
}

// Host reports whether the image stands for the host: named ".host" (wherever
// it lives: the name is the host's) or rooted at "/".
func (i Image) Host() bool { return i.Name == HostName || i.Path == "/" }

// Vendor reports whether the image ships with the OS (lives under /usr): such
// images are never changed.
func (i Image) Vendor() bool { return pathUnder(i.Path, "/usr") }

// Hidden reports whether the image name starts with a dot.
func (i Image) Hidden() bool { return strings.HasPrefix(i.Name, ".") }

func pathUnder(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}
