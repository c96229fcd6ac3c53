package images

import (
	"slices"
	"testing"
)

func TestUserConfig(t *testing.T) {
	cfg := UserConfig("/home/u", "/run/user/1000", "", "")
	if want := []string{"/run/user/1000/machines", "/home/u/.local/state/machines", "/home/u/.local/lib/machines"}; !slices.Equal(cfg.SearchPath, want) {
		t.Errorf("search path %v, want %v", cfg.SearchPath, want)
	}
	if cfg.PoolPath != "/home/u/.local/state/machines" || cfg.LockDir != "/run/user/1000/systemd/nspawn/locks" || cfg.Host {
		t.Errorf("config %+v", cfg)
	}
	if want := []string{"/home/u/.config/systemd/nspawn", "/run/user/1000/systemd/nspawn", "/home/u/.local/lib/systemd/nspawn"}; !slices.Equal(cfg.NspawnDirs, want) {
		t.Errorf("settings dirs %v", cfg.NspawnDirs)
	}
	cfg = UserConfig("/home/u", "", "/st", "/cf")
	if want := []string{"/st/machines", "/home/u/.local/lib/machines"}; !slices.Equal(cfg.SearchPath, want) || cfg.PoolPath != "/st/machines" {
		t.Errorf("without runtime dir: %+v", cfg)
	}
	// Without a runtime directory the system lock directory is used: nspawn
	// run by the user could not share anything else.
	if NewPool(cfg).cfg.LockDir != "/run/systemd/nspawn/locks" {
		t.Errorf("lock dir default not applied")
	}
}
