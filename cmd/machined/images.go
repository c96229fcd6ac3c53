package main

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/machined-go/machined/images"
)

// imagePool is the image pool the daemon serves, and its pool directory. The
// system instance searches upstream's system path with /var/lib/machines as its
// pool and shows .host; a per-user instance the user's directories, with
// ~/.local/state/machines as its pool. --image-search-path and --image-pool
// replace them; a pool given alone is also the whole search path, so that a
// test's pool never mixes with the host's images.
func imagePool(o options) (*images.Pool, string) {
	cfg := images.Config{Host: true}
	if o.user {
		home, _ := os.UserHomeDir()
		cfg = images.UserConfig(home, o.runtimeDir, os.Getenv("XDG_STATE_HOME"), os.Getenv("XDG_CONFIG_HOME"))
	}
	if o.imagePool != "" {
		cfg.PoolPath = o.imagePool
		cfg.SearchPath = []string{o.imagePool}
	}
	if o.imageSearchPath != "" {
		cfg.SearchPath = filepath.SplitList(o.imageSearchPath)
	}
	if cfg.PoolPath == "" {
		cfg.PoolPath = "/var/lib/machines"
	}
	return images.NewPool(cfg), cfg.PoolPath
}

// searchPathFlag checks --image-search-path: absolute directories.
func searchPathFlag(v string) bool {
	for _, d := range filepath.SplitList(v) {
		if !filepath.IsAbs(d) || strings.TrimSpace(d) == "" {
			return false
		}
	}
	return true
}
