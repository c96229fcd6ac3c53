package images

import "path/filepath"

// UserConfig is the pool of a per-user instance: images in the user's runtime
// directory (when there is one), ~/.local/state/machines (also the clone
// target) and ~/.local/lib/machines, in that priority; locks and runtime
// settings below the runtime directory. stateHome and configHome are
// $XDG_STATE_HOME and $XDG_CONFIG_HOME ("" for their defaults below home).
// There is no .host image for a user.
func UserConfig(home, runtimeDir, stateHome, configHome string) Config {
	if stateHome == "" {
		stateHome = filepath.Join(home, ".local/state")
	}
	if configHome == "" {
		configHome = filepath.Join(home, ".config")
	}
	libDir := filepath.Join(home, ".local/lib")
	cfg := Config{
		PoolPath:   filepath.Join(stateHome, "machines"),
		NspawnDirs: []string{filepath.Join(configHome, "systemd/nspawn")},
	}
	if runtimeDir != "" {
		cfg.SearchPath = append(cfg.SearchPath, filepath.Join(runtimeDir, "machines"))
		cfg.LockDir = filepath.Join(runtimeDir, "systemd/nspawn/locks")
		cfg.NspawnDirs = append(cfg.NspawnDirs, filepath.Join(runtimeDir, "systemd/nspawn"))
	}
	cfg.SearchPath = append(cfg.SearchPath, cfg.PoolPath, filepath.Join(libDir, "machines"))
	cfg.NspawnDirs = append(cfg.NspawnDirs, filepath.Join(libDir, "systemd/nspawn"))
	return cfg
}
