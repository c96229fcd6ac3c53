package service

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/machined-go/machined/images"
)

// Polkit actions of the image methods, as named in upstream's policy file.
const (
	ActionManageImages  = "org.freedesktop.machine1.manage-images"
	ActionInspectImages = "org.freedesktop.machine1.inspect-images"
)

// Image is one image as the pool found it; ImageMetadata what it says about the
// OS inside. The front ends see the pool's value types, not the pool.
type (
	Image         = images.Image
	ImageMetadata = images.Metadata
	// ImageMetadataParts picks the fields of ImageMetadata a reading fills.
	ImageMetadataParts = images.MetadataParts
	RemovedImage       = images.Removed
)

// The parts of an image's metadata, one per identity file.
const (
	ImageHostname    = images.PartHostname
	ImageMachineID   = images.PartMachineID
	ImageMachineInfo = images.PartMachineInfo
	ImageOSRelease   = images.PartOSRelease
)

// ImagePool is the image pool the Manager serves (images.Pool); an interface
// so that the core's rules can be tested on a pool that blocks or fails at will.
type ImagePool interface {
	List() ([]images.Image, error)
	Get(name string) (images.Image, error)
	Metadata(ctx context.Context, img images.Image, parts images.MetadataParts) (images.Metadata, error)
	Rename(name, newName string) error
	MarkReadOnly(name string, ro bool) error
	SetLimit(name string, limit uint64) error
	SetPoolLimit(limit uint64) error
	PoolUsage() (usage, limit uint64)
	Clone(ctx context.Context, name, newName string, readOnly bool) error
	Remove(ctx context.Context, name string) error
	Clean(ctx context.Context, mode images.CleanMode) ([]images.Removed, error)
}

// MetadataMode says whether a listing reads each image's metadata, and what a
// failure to read it does: MetadataYes fails the request, MetadataGraceful
// leaves the image's metadata out.
type MetadataMode int

const (
	MetadataNo MetadataMode = iota
	MetadataYes
	MetadataGraceful
)

// ImageEntry is one image of a listing; Metadata is nil when not asked for, not
// readable in graceful mode, or not for this caller's eyes.
type ImageEntry struct {
	Image
	Metadata *ImageMetadata
}

// ImageUpdate is the Varlink Update request: each non-nil field is a change.
type ImageUpdate struct {
	Name     string
	NewName  *string
	ReadOnly *bool
	Limit    *uint64
}

// Clean modes, as both transports name them.
const (
	CleanPoolAll    = string(images.CleanAll)
	CleanPoolHidden = string(images.CleanHidden)
)

// pool returns the image pool, or NotSupported when the daemon serves none.
func (m *Manager) pool() (ImagePool, error) {
	if m.cfg.Images == nil {
		return nil, fmt.Errorf("image management is not enabled: %w", ErrNotSupported)
	}
	return m.cfg.Images, nil
}

// PoolInfo returns the pool directory and its btrfs usage and limit
// (math.MaxUint64 when unknown, as off btrfs).
func (m *Manager) PoolInfo() (path string, usage, limit uint64) {
	path = m.cfg.ImagePoolPath
	if path == "" {
		path = "/var/lib/machines"
	}
	if m.cfg.Images == nil {
		return path, ^uint64(0), ^uint64(0)
	}
	usage, limit = m.cfg.Images.PoolUsage()
	return path, usage, limit
}

// findImage validates name (field names the request parameter) and looks it up.
func (m *Manager) findImage(field, name string) (ImagePool, Image, error) {
	p, err := m.pool()
	if err != nil {
		return nil, Image{}, err
	}
	if err := validImageName(field, name); err != nil {
		return nil, Image{}, err
	}
	img, err := p.Get(name)
	if err != nil {
		return nil, Image{}, imageError(err, name)
	}
	return p, img, nil
}

func validImageName(field, name string) error {
	if images.ValidName(name) != nil {
		return invalidArg(field, "image name '%s' is invalid.", name)
	}
	return nil
}

// imageError is the one translation of the pool's errors into the core's kinds.
// Errno failures (EROFS for vendor, host and read-only images, EBUSY while an
// image is in use, EOPNOTSUPP for a limit on an image that is no subvolume)
// keep their errno, which both transports answer as upstream.
func imageError(err error, name string) error {
	var errno syscall.Errno
	switch {
	case err == nil:
		return nil
	case errors.Is(err, images.ErrNoSuchImage):
		return fmt.Errorf("no image '%s' known: %w", name, ErrNoSuchImage)
	case errors.Is(err, images.ErrImageExists):
		return fmt.Errorf("image '%s' already exists: %w", name, ErrImageExists)
	case errors.Is(err, images.ErrInvalidName):
		return invalidArg("name", "image name '%s' is invalid.", name)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("image '%s': operation cancelled: %w", name, ErrNotAvailable)
	case errors.As(err, &errno):
		return fmt.Errorf("image '%s': %w", name, errno)
	}
	return fmt.Errorf("image '%s': %w", name, err)
}

// authorizeImages is the rule for every change to images or the pool: privileged
// callers pass, the Authorizer decides for the others, and without one they are
// refused. Images have no owner: nobody but root may change what every
// container boots from.
func (m *Manager) authorizeImages(ctx context.Context, c Caller, details func() map[string]string) error {
	return m.authorize(ctx, c, ActionManageImages, details, nil)
}

// authorizeInspectImages is the rule for an image's metadata (its hostname,
// machine ID, machine-info and os-release): the same as for the os-release of
// other users' machines (DECISIONS 43), privileged callers or an
// inspect-images grant.
func (m *Manager) authorizeInspectImages(ctx context.Context, c Caller, name string) error {
	if name == "" {
		name = NoDetailsName
	}
	return m.authorize(ctx, c, ActionInspectImages, func() map[string]string {
		return map[string]string{"image": name, "verb": "inspect"}
	}, nil)
}

// ListImages returns every image (name ""), or the one named, with its metadata
// when mode asks for it. Listing is open to everyone; metadata is read only for
// callers allowed to inspect images, and left out for the others.
func (m *Manager) ListImages(ctx context.Context, c Caller, name string, mode MetadataMode) ([]ImageEntry, error) {
	p, err := m.pool()
	if err != nil {
		return nil, err
	}
	var list []Image
	if name != "" {
		_, img, err := m.findImage("name", name)
		if err != nil {
			return nil, err
		}
		list = []Image{img}
	} else if list, err = p.List(); err != nil {
		return nil, imageError(err, "")
	}
	out := make([]ImageEntry, len(list))
	for i, img := range list {
		out[i].Image = img
	}
	if mode == MetadataNo || len(out) == 0 || m.authorizeInspectImages(ctx, c, name) != nil {
		return out, nil
	}
	for i := range out {
		md, err := p.Metadata(ctx, out[i].Image, images.AllMetadata)
		if err != nil {
			if mode == MetadataGraceful {
				continue
			}
			return nil, imageError(err, out[i].Name)
		}
		out[i].Metadata = &md
	}
	return out, nil
}

// GetImage returns the image called name; open to everyone, as listing is.
func (m *Manager) GetImage(name string) (Image, error) {
	_, img, err := m.findImage("name", name)
	return img, err
}

// GetImageMetadata reads the parts of the metadata of the image called name,
// for callers allowed to inspect images.
func (m *Manager) GetImageMetadata(ctx context.Context, c Caller, name string, parts ImageMetadataParts) (ImageMetadata, error) {
	p, img, err := m.findImage("name", name)
	if err != nil {
		return ImageMetadata{}, err
	}
	if err := m.authorizeInspectImages(ctx, c, name); err != nil {
		return ImageMetadata{}, err
	}
	md, err := p.Metadata(ctx, img, parts)
	return md, imageError(err, name)
}

// RenameImage renames an image (D-Bus RenameImage, Image.Rename).
func (m *Manager) RenameImage(ctx context.Context, c Caller, name, newName string) error {
	p, err := m.admitNewName(ctx, c, "rename", name, newName)
	if err != nil {
		return err
	}
	return renameError(p.Rename(name, newName), name, newName)
}

// admitNewName is what a rename and a clone check before they start: the image
// name, the name it is to get, and the caller's right to verb it. It returns
// the image's pool.
func (m *Manager) admitNewName(ctx context.Context, c Caller, verb, name, newName string) (ImagePool, error) {
	p, _, err := m.findImage("name", name)
	if err != nil {
		return nil, err
	}
	if err := validImageName("newName", newName); err != nil {
		return nil, err
	}
	if err := m.authorizeImages(ctx, c, func() map[string]string {
		return map[string]string{"image": name, "verb": verb, "new_name": newName}
	}); err != nil {
		return nil, err
	}
	return p, nil
}

// renameError names the target when it is the target that exists.
func renameError(err error, name, newName string) error {
	if errors.Is(err, images.ErrImageExists) {
		return imageError(err, newName)
	}
	return imageError(err, name)
}

// MarkImageReadOnly sets or clears an image's read-only state.
func (m *Manager) MarkImageReadOnly(ctx context.Context, c Caller, name string, ro bool) error {
	p, _, err := m.findImage("name", name)
	if err != nil {
		return err
	}
	if err := m.authorizeImages(ctx, c, func() map[string]string {
		return map[string]string{"image": name, "verb": "mark_read_only", "read_only": yesNo(ro)}
	}); err != nil {
		return err
	}
	return imageError(p.MarkReadOnly(name, ro), name)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// SetImageLimit sets the quota of a subvolume image. Upstream names the image
// in the "machine" detail here, unlike every other image check; polkit rules
// written for it match on that key.
func (m *Manager) SetImageLimit(ctx context.Context, c Caller, name string, limit uint64) error {
	p, _, err := m.findImage("name", name)
	if err != nil {
		return err
	}
	if err := m.authorizeImages(ctx, c, func() map[string]string {
		return map[string]string{"machine": name, "verb": "set_limit"}
	}); err != nil {
		return err
	}
	return imageError(p.SetLimit(name, limit), name)
}

// UpdateImage applies the Varlink Update: the rename first, then the read-only
// state, then the limit. The last two are both attempted whatever the other
// does; the first failure is the answer.
func (m *Manager) UpdateImage(ctx context.Context, c Caller, u ImageUpdate) error {
	p, _, err := m.findImage("name", u.Name)
	if err != nil {
		return err
	}
	if u.NewName != nil {
		if err := validImageName("newName", *u.NewName); err != nil {
			return err
		}
	}
	if err := m.authorizeImages(ctx, c, func() map[string]string {
		return map[string]string{"image": u.Name, "verb": "update"}
	}); err != nil {
		return err
	}
	name := u.Name
	if u.NewName != nil {
		if err := p.Rename(name, *u.NewName); err != nil {
			return renameError(err, name, *u.NewName)
		}
		name = *u.NewName
	}
	var first error
	if u.ReadOnly != nil {
		first = imageError(p.MarkReadOnly(name, *u.ReadOnly), name)
	}
	if u.Limit != nil {
		if err := imageError(p.SetLimit(name, *u.Limit), name); first == nil {
			first = err
		}
	}
	return first
}

// SetPoolLimit sets the pool directory's quota. Upstream's D-Bus method asks
// polkit for manage-machines and its Varlink one for manage-images; both ask
// for manage-images here, the action that is about images.
func (m *Manager) SetPoolLimit(ctx context.Context, c Caller, limit uint64) error {
	p, err := m.pool()
	if err != nil {
		return err
	}
	if err := m.authorizeImages(ctx, c, func() map[string]string {
		return map[string]string{"verb": "set_pool_limit"}
	}); err != nil {
		return err
	}
	// Off btrfs, upstream answers this one (only) with its NotSupported error
	// and these words.
	err = p.SetPoolLimit(limit)
	if errors.Is(err, syscall.EOPNOTSUPP) {
		return fmt.Errorf("quota is only supported on btrfs.: %w", ErrNotSupported)
	}
	return imageError(err, "")
}

// CloneImage copies an image into the pool under newName, as an operation: at
// most ops.Max run at once, and it stops when the caller goes or the daemon
// stops.
func (m *Manager) CloneImage(ctx context.Context, c Caller, name, newName string, readOnly bool) error {
	p, err := m.admitNewName(ctx, c, "clone", name, newName)
	if err != nil {
		return err
	}
	return m.runOperation(ctx, nil, func(ctx context.Context) error {
		return renameError(p.Clone(ctx, name, newName, readOnly), name, newName)
	})
}

// RemoveImage deletes an image, as an operation.
func (m *Manager) RemoveImage(ctx context.Context, c Caller, name string) error {
	p, _, err := m.findImage("name", name)
	if err != nil {
		return err
	}
	if err := m.authorizeImages(ctx, c, func() map[string]string {
		return map[string]string{"image": name, "verb": "remove"}
	}); err != nil {
		return err
	}
	return m.runOperation(ctx, nil, func(ctx context.Context) error {
		return imageError(p.Remove(ctx, name), name)
	})
}

// CleanPool removes every image of mode ("all" or "hidden") but vendor images,
// .host and images in use, as an operation, and returns what it removed. As
// SetPoolLimit, it asks for manage-images where upstream's D-Bus method asks for
// manage-machines.
func (m *Manager) CleanPool(ctx context.Context, c Caller, mode string) ([]RemovedImage, error) {
	p, err := m.pool()
	if err != nil {
		return nil, err
	}
	if mode != CleanPoolAll && mode != CleanPoolHidden {
		return nil, invalidArg("mode", "unknown mode '%s'.", mode)
	}
	if err := m.authorizeImages(ctx, c, func() map[string]string {
		return map[string]string{"verb": "clean_pool", "mode": mode}
	}); err != nil {
		return nil, err
	}
	var removed []RemovedImage
	err = m.runOperation(ctx, nil, func(ctx context.Context) error {
		var err error
		removed, err = p.Clean(ctx, images.CleanMode(mode))
		return imageError(err, "")
	})
	return removed, err
}
