package images

import "context"

// Config says where the pool looks. Zero values mean the system defaults.
type Config struct {
	SearchPath []string // nil = the system search path, in priority order
	PoolPath   string   // "" = /var/lib/machines (clone target, pool limit)
	LockDir    string   // "" = /run/systemd/nspawn/locks
	NspawnDirs []string // where .nspawn settings live; nil = /etc/systemd/nspawn, /run/systemd/nspawn
	Host       bool     // add the ".host" image
}

// Pool is the set of images in a search path. It holds no list of images: every
// lookup reads the file system, so it is never stale.
type Pool struct {
	cfg Config
}

// NewPool returns the pool for cfg.
func NewPool(cfg Config) *Pool { return &Pool{cfg: cfg} }

// List returns every image, each name once (the first directory of the search
// path that holds it wins), sorted by name.
func (p *Pool) List() ([]Image, error) { return nil, errNotImplemented }

// Get returns the image called name.
func (p *Pool) Get(name string) (Image, error) { return Image{}, errNotImplemented }

// Rename renames the image and its auxiliary files within its directory.
func (p *Pool) Rename(name, newName string) error { return errNotImplemented }

// MarkReadOnly sets or clears the image's read-only state.
func (p *Pool) MarkReadOnly(name string, ro bool) error { return errNotImplemented }

// SetLimit sets the quota of a subvolume image.
func (p *Pool) SetLimit(name string, limit uint64) error { return errNotImplemented }

// SetPoolLimit sets the quota of the pool directory.
func (p *Pool) SetPoolLimit(limit uint64) error { return errNotImplemented }

// PoolUsage returns the pool directory's usage and limit; math.MaxUint64 when
// unknown.
func (p *Pool) PoolUsage() (usage, limit uint64) { return ^uint64(0), ^uint64(0) }

// Clone copies the image to newName in the pool directory.
func (p *Pool) Clone(ctx context.Context, name, newName string, readOnly bool) error {
	return errNotImplemented
}

// Remove deletes the image and its auxiliary files.
func (p *Pool) Remove(ctx context.Context, name string) error { return errNotImplemented }

// CleanMode selects the images Clean removes.
type CleanMode string

const (
	CleanAll    CleanMode = "all"
	CleanHidden CleanMode = "hidden"
)

// Removed is one image Clean removed.
type Removed struct {
	Name           string
	UsageExclusive uint64
}

// Clean removes every image mode selects, except vendor images, .host and images
// in use.
func (p *Pool) Clean(ctx context.Context, mode CleanMode) ([]Removed, error) {
	return nil, errNotImplemented
}
