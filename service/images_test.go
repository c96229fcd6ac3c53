package service

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/machined-go/machined/images"
	"github.com/machined-go/machined/service/ops"
)

// fakePool is an image pool in memory: it records the changes asked of it,
// fails with err when set, and its Clone blocks until release is closed (when
// set), so that operations can be held running.
type fakePool struct {
	mu      sync.Mutex
	images  map[string]images.Image
	err     map[string]error // by method
	calls   []string
	started chan struct{}          // gets a value when a Clone starts
	release chan struct{}          // Clone waits for it, or for its ctx
	ctxErr  chan error             // a blocked Clone's ctx error
	md      images.Metadata        // what Metadata returns
	parts   []images.MetadataParts // what each Metadata call asked for
}

func newFakePool(names ...string) *fakePool {
	p := &fakePool{images: map[string]images.Image{}, err: map[string]error{}}
	for _, n := range names {
		p.images[n] = images.Image{Name: n, Path: "/var/lib/machines/" + n, Type: images.TypeDirectory}
	}
	p.md = images.Metadata{Hostname: "h", OSRelease: []string{"ID=debian"}}
	return p
}

func (p *fakePool) record(call string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, call)
	return p.err[call]
}

func (p *fakePool) List() ([]images.Image, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []images.Image
	for _, img := range p.images {
		out = append(out, img)
	}
	return out, nil
}

func (p *fakePool) Get(name string) (images.Image, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	img, ok := p.images[name]
	if !ok {
		return img, fmt.Errorf("%s: %w", name, images.ErrNoSuchImage)
	}
	return img, nil
}

func (p *fakePool) Metadata(_ context.Context, _ images.Image, parts images.MetadataParts) (images.Metadata, error) {
	p.mu.Lock()
	p.parts = append(p.parts, parts)
	p.mu.Unlock()
	return p.md, p.record("Metadata")
}
func (p *fakePool) Rename(name, newName string) error {
	return p.record("Rename " + name + " " + newName)
}
func (p *fakePool) MarkReadOnly(name string, ro bool) error {
	return p.record(fmt.Sprintf("MarkReadOnly %s %v", name, ro))
}
func (p *fakePool) SetLimit(name string, limit uint64) error {
	return p.record(fmt.Sprintf("SetLimit %s %d", name, limit))
}
func (p *fakePool) SetPoolLimit(limit uint64) error {
	return p.record(fmt.Sprintf("SetPoolLimit %d", limit))
}
func (p *fakePool) PoolUsage() (usage, limit uint64) { return 1, 2 }
func (p *fakePool) Remove(_ context.Context, name string) error {
	return p.record("Remove " + name)
}
func (p *fakePool) Clean(_ context.Context, mode images.CleanMode) ([]images.Removed, error) {
	return []images.Removed{{Name: "x", UsageExclusive: 7}}, p.record("Clean " + string(mode))
}

func (p *fakePool) Clone(ctx context.Context, name, newName string, ro bool) error {
	err := p.record(fmt.Sprintf("Clone %s %s %v", name, newName, ro))
	if p.release == nil {
		return err
	}
	p.started <- struct{}{}
	select {
	case <-p.release:
		return err
	case <-ctx.Done():
		p.ctxErr <- ctx.Err()
		return ctx.Err()
	}
}

func (p *fakePool) callList() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

// detailsAuthorizer answers err and remembers the actions and details asked.
type detailsAuthorizer struct {
	mu      sync.Mutex
	actions []string
	details []map[string]string
	err     error
}

func (a *detailsAuthorizer) Check(_ context.Context, _ Caller, action string, details map[string]string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.actions = append(a.actions, action)
	a.details = append(a.details, maps.Clone(details))
	return a.err
}

func newImageManager(t *testing.T, p ImagePool, authz Authorizer) *Manager {
	t.Helper()
	m, err := New(Config{StateDir: filepath.Join(t.TempDir(), "machines"), Images: p, Authorizer: authz})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

var nobodyCaller = Caller{UID: 65534, GID: 65534, PIDFD: -1}

// Without a pool, every image method is NotSupported, and the pool shows as
// unknown, as upstream off btrfs.
func TestImagesWithoutPoolAreNotSupported(t *testing.T) {
	m := newImageManager(t, nil, nil)
	ctx := context.Background()
	checks := map[string]error{
		"list":   func() error { _, err := m.ListImages(ctx, root, "", MetadataNo); return err }(),
		"get":    func() error { _, err := m.GetImage("a"); return err }(),
		"rename": m.RenameImage(ctx, root, "a", "b"),
		"remove": m.RemoveImage(ctx, root, "a"),
		"clean":  func() error { _, err := m.CleanPool(ctx, root, "all"); return err }(),
		"pool":   m.SetPoolLimit(ctx, root, 1),
	}
	for what, err := range checks {
		if !errors.Is(err, ErrNotSupported) {
			t.Errorf("%s without a pool: %v, want NotSupported", what, err)
		}
	}
	if path, usage, limit := m.PoolInfo(); path != "/var/lib/machines" || usage != ^uint64(0) || limit != ^uint64(0) {
		t.Errorf("PoolInfo = %q %d %d", path, usage, limit)
	}
}

// Every change is root's without polkit: nobody is refused before the pool is
// touched, root passes.
func TestImageChangesNeedPrivilegesWithoutPolkit(t *testing.T) {
	p := newFakePool("a")
	m := newImageManager(t, p, nil)
	ctx := context.Background()
	ro, limit, nn := true, uint64(5), "c"
	changes := map[string]func(c Caller) error{
		"rename":   func(c Caller) error { return m.RenameImage(ctx, c, "a", "b") },
		"readonly": func(c Caller) error { return m.MarkImageReadOnly(ctx, c, "a", true) },
		"limit":    func(c Caller) error { return m.SetImageLimit(ctx, c, "a", 1) },
		"update": func(c Caller) error {
			return m.UpdateImage(ctx, c, ImageUpdate{Name: "a", NewName: &nn, ReadOnly: &ro, Limit: &limit})
		},
		"poollimit": func(c Caller) error { return m.SetPoolLimit(ctx, c, 1) },
		"clone":     func(c Caller) error { return m.CloneImage(ctx, c, "a", "b", false) },
		"remove":    func(c Caller) error { return m.RemoveImage(ctx, c, "a") },
		"clean":     func(c Caller) error { _, err := m.CleanPool(ctx, c, "all"); return err },
	}
	for what, change := range changes {
		if err := change(nobodyCaller); !errors.Is(err, ErrPermissionDenied) {
			t.Errorf("%s as nobody: %v, want PermissionDenied", what, err)
		}
	}
	if calls := p.callList(); len(calls) != 0 {
		t.Fatalf("the pool was changed for nobody: %v", calls)
	}
	for what, change := range changes {
		if err := change(root); err != nil {
			t.Errorf("%s as root: %v", what, err)
		}
	}
}

// With polkit, manage-images decides, with upstream's details (SetLimit names
// the image "machine"); SetPoolLimit and CleanPool ask for manage-images too.
func TestImageChangesAskPolkitWithUpstreamDetails(t *testing.T) {
	p := newFakePool("a")
	authz := &detailsAuthorizer{}
	m := newImageManager(t, p, authz)
	ctx := context.Background()
	ro := false
	steps := []struct {
		do   func() error
		want map[string]string
	}{
		{func() error { return m.RenameImage(ctx, nobodyCaller, "a", "b") }, map[string]string{"image": "a", "verb": "rename", "new_name": "b"}},
		{func() error { return m.MarkImageReadOnly(ctx, nobodyCaller, "a", true) }, map[string]string{"image": "a", "verb": "mark_read_only", "read_only": "yes"}},
		{func() error { return m.SetImageLimit(ctx, nobodyCaller, "a", 9) }, map[string]string{"machine": "a", "verb": "set_limit"}},
		{func() error { return m.UpdateImage(ctx, nobodyCaller, ImageUpdate{Name: "a", ReadOnly: &ro}) }, map[string]string{"image": "a", "verb": "update"}},
		{func() error { return m.CloneImage(ctx, nobodyCaller, "a", "b", true) }, map[string]string{"image": "a", "verb": "clone", "new_name": "b"}},
		{func() error { return m.RemoveImage(ctx, nobodyCaller, "a") }, map[string]string{"image": "a", "verb": "remove"}},
		{func() error { return m.SetPoolLimit(ctx, nobodyCaller, 3) }, map[string]string{"verb": "set_pool_limit"}},
		{func() error { _, err := m.CleanPool(ctx, nobodyCaller, "hidden"); return err }, map[string]string{"verb": "clean_pool", "mode": "hidden"}},
	}
	for i, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := authz.actions[i]; got != ActionManageImages {
			t.Errorf("step %d asked %s", i, got)
		}
		if !maps.Equal(authz.details[i], s.want) {
			t.Errorf("step %d details %v, want %v", i, authz.details[i], s.want)
		}
	}
	authz.err = ErrInteractiveAuth
	if err := m.RemoveImage(ctx, nobodyCaller, "a"); !errors.Is(err, ErrInteractiveAuth) {
		t.Errorf("polkit's challenge: %v", err)
	}
}

// Names are checked before anything else, each naming its parameter; an
// unknown image is NoSuchImage; an unknown clean mode is InvalidArg mode.
func TestImageNamesAndModesAreChecked(t *testing.T) {
	p := newFakePool("a")
	m := newImageManager(t, p, nil)
	ctx := context.Background()
	for _, bad := range []string{"", ".", "..", "a/b", ".#a", "a\x01", strings.Repeat("a", 256)} {
		if _, err := m.GetImage(bad); !isInvalidArg(err, "name") {
			t.Errorf("GetImage(%q): %v, want InvalidArg name", bad, err)
		}
		if err := m.RenameImage(ctx, root, "a", bad); !isInvalidArg(err, "newName") {
			t.Errorf("RenameImage to %q: %v, want InvalidArg newName", bad, err)
		}
		if err := m.CloneImage(ctx, root, "a", bad, false); !isInvalidArg(err, "newName") {
			t.Errorf("CloneImage to %q: %v, want InvalidArg newName", bad, err)
		}
		nn := bad
		if err := m.UpdateImage(ctx, root, ImageUpdate{Name: "a", NewName: &nn}); !isInvalidArg(err, "newName") {
			t.Errorf("UpdateImage to %q: %v, want InvalidArg newName", bad, err)
		}
	}
	if _, err := m.GetImage("nope"); !errors.Is(err, ErrNoSuchImage) {
		t.Errorf("GetImage(nope): %v", err)
	}
	if err := m.RemoveImage(ctx, root, "nope"); !errors.Is(err, ErrNoSuchImage) {
		t.Errorf("RemoveImage(nope): %v", err)
	}
	if _, err := m.CleanPool(ctx, root, "some"); !isInvalidArg(err, "mode") {
		t.Errorf("CleanPool(some): %v", err)
	}
	if calls := p.callList(); len(calls) != 0 {
		t.Errorf("the pool was asked to change: %v", calls)
	}
}

// The pool's errors become the core's kinds, keeping their errno.
func TestImageErrorsMapToKinds(t *testing.T) {
	p := newFakePool("a")
	m := newImageManager(t, p, nil)
	ctx := context.Background()
	p.err["Rename a b"] = fmt.Errorf("rename: %w %w", images.ErrImageExists, syscall.EEXIST)
	if err := m.RenameImage(ctx, root, "a", "b"); !errors.Is(err, ErrImageExists) {
		t.Errorf("existing target: %v", err)
	}
	p.err["Remove a"] = fmt.Errorf("locked: %w", syscall.EBUSY)
	if err := m.RemoveImage(ctx, root, "a"); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("busy image: %v", err)
	}
	p.err["MarkReadOnly a true"] = fmt.Errorf("vendor: %w", syscall.EROFS)
	if err := m.MarkImageReadOnly(ctx, root, "a", true); !errors.Is(err, syscall.EROFS) {
		t.Errorf("vendor image: %v", err)
	}
	p.err["SetLimit a 1"] = fmt.Errorf("not btrfs: %w", syscall.EOPNOTSUPP)
	if err := m.SetImageLimit(ctx, root, "a", 1); !errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, ErrNotSupported) {
		t.Errorf("limit off btrfs: %v", err)
	}
	p.err["SetPoolLimit 1"] = fmt.Errorf("not btrfs: %w", syscall.EOPNOTSUPP)
	if err := m.SetPoolLimit(ctx, root, 1); !errors.Is(err, ErrNotSupported) || err.Error() != "quota is only supported on btrfs.: not supported" {
		t.Errorf("pool limit off btrfs: %v", err)
	}
}

// Update renames first, then attempts both the read-only change and the limit
// whatever the other does, and answers the first failure.
func TestUpdateImageAttemptsEveryChange(t *testing.T) {
	p := newFakePool("a")
	m := newImageManager(t, p, nil)
	nn, ro, limit := "b", true, uint64(4)
	p.err["MarkReadOnly b true"] = fmt.Errorf("ro: %w", syscall.EROFS)
	p.err["SetLimit b 4"] = fmt.Errorf("limit: %w", syscall.EOPNOTSUPP)
	err := m.UpdateImage(context.Background(), root, ImageUpdate{Name: "a", NewName: &nn, ReadOnly: &ro, Limit: &limit})
	if !errors.Is(err, syscall.EROFS) {
		t.Errorf("Update: %v, want the read-only failure", err)
	}
	want := []string{"Rename a b", "MarkReadOnly b true", "SetLimit b 4"}
	if got := p.callList(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("calls %v, want %v", got, want)
	}
}

// Listing is open to all; metadata only for callers who may inspect images,
// and left out for the others rather than refused. Reading one image's
// metadata is refused to them.
func TestImageMetadataNeedsInspect(t *testing.T) {
	p := newFakePool("a", "b")
	m := newImageManager(t, p, nil)
	ctx := context.Background()
	list, err := m.ListImages(ctx, nobodyCaller, "", MetadataYes)
	if err != nil || len(list) != 2 {
		t.Fatalf("nobody lists: %v %v", list, err)
	}
	for _, e := range list {
		if e.Metadata != nil {
			t.Errorf("nobody got metadata of %s", e.Name)
		}
	}
	list, err = m.ListImages(ctx, root, "a", MetadataYes)
	if err != nil || len(list) != 1 || list[0].Metadata == nil || list[0].Metadata.Hostname != "h" {
		t.Fatalf("root lists a with metadata: %+v %v", list, err)
	}
	if _, err := m.GetImageMetadata(ctx, nobodyCaller, "a", ImageHostname); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("nobody reads metadata: %v", err)
	}
	if md, err := m.GetImageMetadata(ctx, root, "a", ImageHostname); err != nil || md.Hostname != "h" {
		t.Errorf("root reads metadata: %v %v", md, err)
	}

	authz := &detailsAuthorizer{}
	m = newImageManager(t, p, authz)
	if _, err := m.GetImageMetadata(ctx, nobodyCaller, "a", ImageHostname); err != nil {
		t.Errorf("nobody with the grant: %v", err)
	}
	if authz.actions[0] != ActionInspectImages || authz.details[0]["image"] != "a" {
		t.Errorf("asked %v %v", authz.actions, authz.details)
	}

	// yes fails on an unreadable image, graceful leaves it out.
	p.err["Metadata"] = fmt.Errorf("broken: %w", syscall.EIO)
	if _, err := m.ListImages(ctx, root, "", MetadataYes); !errors.Is(err, syscall.EIO) {
		t.Errorf("yes on a broken image: %v", err)
	}
	list, err = m.ListImages(ctx, root, "", MetadataGraceful)
	if err != nil || len(list) != 2 || list[0].Metadata != nil {
		t.Errorf("graceful on a broken image: %+v %v", list, err)
	}
}

// Clones are operations: the 65th at once is TooManyOperations, and a clone
// ends when its caller's context does.
func TestCloneIsABoundedOperation(t *testing.T) {
	p := newFakePool("a")
	p.started, p.release, p.ctxErr = make(chan struct{}, ops.Max), make(chan struct{}), make(chan error, ops.Max)
	m := newImageManager(t, p, nil)
	var wg sync.WaitGroup
	errs := make(chan error, ops.Max)
	for i := range ops.Max {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- m.CloneImage(context.Background(), root, "a", fmt.Sprintf("c%d", i), false)
		}()
	}
	for range ops.Max {
		select {
		case <-p.started:
		case err := <-errs:
			t.Fatalf("a clone ended before the cap was reached: %v", err)
		}
	}
	if err := m.CloneImage(context.Background(), root, "a", "one-more", false); !errors.Is(err, ErrTooManyOperations) {
		t.Errorf("the 65th clone: %v", err)
	}
	close(p.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("clone: %v", err)
		}
	}

	p.release = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.CloneImage(ctx, root, "a", "gone", false) }()
	select {
	case <-p.started:
	case err := <-done:
		t.Fatalf("the clone ended before it started: %v", err)
	}
	cancel()
	if err := <-p.ctxErr; err == nil {
		t.Errorf("the clone's context did not end")
	}
	if err := <-done; err == nil {
		t.Errorf("a cancelled clone succeeded")
	}
}

// The pool's directory comes from the configuration, its usage and limit from
// the pool itself.
func TestPoolInfoAsksThePool(t *testing.T) {
	m, err := New(Config{StateDir: filepath.Join(t.TempDir(), "machines"), Images: newFakePool(), ImagePoolPath: "/srv/pool"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if path, usage, limit := m.PoolInfo(); path != "/srv/pool" || usage != 1 || limit != 2 {
		t.Errorf("PoolInfo = %q %d %d", path, usage, limit)
	}
}

// A listing reads all of each image's metadata; a getter passes on the part it
// answers, so that the pool opens that file alone.
func TestImageMetadataParts(t *testing.T) {
	p := newFakePool("a")
	m := newImageManager(t, p, nil)
	ctx := context.Background()
	if _, err := m.ListImages(ctx, root, "", MetadataYes); err != nil {
		t.Fatal(err)
	}
	for _, part := range []ImageMetadataParts{ImageHostname, ImageMachineID, ImageMachineInfo, ImageOSRelease} {
		if _, err := m.GetImageMetadata(ctx, root, "a", part); err != nil {
			t.Fatal(err)
		}
	}
	want := []images.MetadataParts{images.AllMetadata, images.PartHostname, images.PartMachineID, images.PartMachineInfo, images.PartOSRelease}
	if !slices.Equal(p.parts, want) {
		t.Errorf("parts asked %v, want %v", p.parts, want)
	}
}
