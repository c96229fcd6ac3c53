package images

// Config says where the pool looks. Zero values mean the system defaults.
type Config struct {
	SearchPath []string // nil = the system search path, in priority order
	PoolPath   string   // "" = /var/lib/machines (clone target, pool limit)
	LockDir    string   // "" = /run/systemd/nspawn/locks
	NspawnDirs []string // where .nspawn settings live; nil = /etc/systemd/nspawn, /run/systemd/nspawn
	Host       bool     // add the ".host" image
}

// Pool is the set of images in a search path. It holds no list of images: every
// lookup reads the file system, so it is never stale. Only the metadata read
// from images is cached, keyed by what changes when the image does.
type Pool struct {
	cfg  Config
	meta metadataCache
}

// NewPool returns the pool for cfg.
func NewPool(cfg Config) *Pool {
	if cfg.SearchPath == nil {
		cfg.SearchPath = systemSearchPath
	}
	if cfg.PoolPath == "" {
		cfg.PoolPath = "/var/lib/machines"
	}
	if cfg.LockDir == "" {
		cfg.LockDir = "/run/systemd/nspawn/locks"
	}
	if cfg.NspawnDirs == nil {
		cfg.NspawnDirs = []string{"/etc/systemd/nspawn", "/run/systemd/nspawn"}
	}
	return &Pool{cfg: cfg}
}

func (p *Pool) searchPath() []string { return p.cfg.SearchPath }

// PoolPath is the directory clones go to and the pool limit applies to.
func (p *Pool) PoolPath() string { return p.cfg.PoolPath }

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
