package tests

import (
	"context"
	"errors"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/machined-go/machined/client"
)

// The client library's image calls against the daemon, as root and as nobody.
func TestClientImages(t *testing.T) {
	pool := newPoolDir(t)
	writeOSTree(t, filepath.Join(pool, "alpha"), "Alpha OS 1", "alphahost")
	writeOSTree(t, filepath.Join(pool, ".hidden"), "Hidden", "hidden")
	d := startDaemon(t, "--units", "none", "--image-pool", pool)
	ctx := context.Background()
	c := dialClient(t, d)

	img, err := c.GetImage(ctx, "alpha", client.MetadataYes)
	if err != nil || img.Type != "directory" || img.Hostname != "alphahost" || img.MachineID != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("GetImage alpha: %+v %v", img, err)
	}
	var names []string
	for img, err := range c.ListImages(ctx, client.MetadataNo) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, img.Name)
	}
	if len(names) != 3 {
		t.Errorf("ListImages: %v", names)
	}
	if _, err := c.GetImage(ctx, "nope", client.MetadataNo); !errors.Is(err, client.ErrNoSuchImage) {
		t.Errorf("GetImage nope: %v", err)
	}

	if err := c.CloneImage(ctx, "alpha", "beta", true); err != nil {
		t.Fatal(err)
	}
	if !immutable(t, filepath.Join(pool, "beta")) {
		t.Error("read-only clone")
	}
	nn, ro := "gamma", false
	if err := c.UpdateImage(ctx, "beta", client.ImageUpdate{NewName: &nn, ReadOnly: &ro}); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(pool, "beta")) || immutable(t, filepath.Join(pool, "gamma")) {
		t.Error("UpdateImage")
	}
	limit := uint64(1 << 20)
	if err := c.UpdateImage(ctx, "gamma", client.ImageUpdate{Limit: &limit}); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Errorf("a limit on ext4: %v", err)
	}
	if err := c.SetPoolLimit(ctx, limit); !errors.Is(err, client.ErrImageNotSupported) {
		t.Errorf("a pool limit on ext4: %v", err)
	}
	if err := c.CloneImage(ctx, "alpha", "gamma", false); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("clone onto a taken name: %v", err)
	}
	if err := c.RemoveImage(ctx, ".host"); !errors.Is(err, syscall.EROFS) {
		t.Errorf("remove .host: %v", err)
	}

	nobody := dialClient(t, d, asNobody())
	if err := nobody.RemoveImage(ctx, "gamma"); !errors.Is(err, client.ErrPermissionDenied) {
		t.Errorf("nobody's RemoveImage: %v", err)
	}
	if img, err := nobody.GetImage(ctx, "alpha", client.MetadataYes); err != nil || img.Hostname != "" {
		t.Errorf("nobody's GetImage: %+v %v", img, err)
	}

	if err := c.RemoveImage(ctx, "gamma"); err != nil {
		t.Fatal(err)
	}
	var removed []string
	for r, err := range c.CleanPool(ctx, client.CleanHidden) {
		if err != nil {
			t.Fatal(err)
		}
		removed = append(removed, r.Name)
	}
	if len(removed) != 1 || removed[0] != ".hidden" {
		t.Errorf("CleanPool hidden: %v", removed)
	}
	for r, err := range c.CleanPool(ctx, client.CleanHidden) {
		t.Errorf("CleanPool with nothing hidden left: %v %v", r, err)
	}
	if exists(filepath.Join(pool, "gamma")) || exists(filepath.Join(pool, ".hidden")) || !exists(filepath.Join(pool, "alpha")) {
		t.Error("the pool after removals")
	}
}
