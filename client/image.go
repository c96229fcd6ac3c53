package client

import (
	"context"
	"errors"
	"iter"
)

// The io.systemd.MachineImage errors.
var (
	ErrNoSuchImage       error = &sentinel{"io.systemd.MachineImage.NoSuchImage"}
	ErrTooManyOperations error = &sentinel{"io.systemd.MachineImage.TooManyOperations"}
	ErrImageNotSupported error = &sentinel{"io.systemd.MachineImage.NotSupported"}
)

// Image is one image as io.systemd.MachineImage.List shows it. Unknown times
// and sizes are nil; the metadata fields are set only when asked for.
type Image struct {
	Name                  string   `json:"name"`
	Path                  string   `json:"path,omitempty"`
	Type                  string   `json:"type"` // directory, subvolume, raw or block
	Class                 string   `json:"class"`
	ReadOnly              bool     `json:"readOnly"`
	CreationTimestamp     *uint64  `json:"creationTimestamp,omitempty"` // µs since the epoch
	ModificationTimestamp *uint64  `json:"modificationTimestamp,omitempty"`
	Usage                 *uint64  `json:"usage,omitempty"` // bytes
	UsageExclusive        *uint64  `json:"usageExclusive,omitempty"`
	Limit                 *uint64  `json:"limit,omitempty"`
	LimitExclusive        *uint64  `json:"limitExclusive,omitempty"`
	Hostname              string   `json:"hostname,omitempty"`
	MachineID             string   `json:"machineId,omitempty"`
	MachineInfo           []string `json:"machineInfo,omitempty"` // KEY=VALUE
	OSRelease             []string `json:"OSRelease,omitempty"`   // KEY=VALUE
}

type imageParams struct {
	Name        string `json:"name,omitempty"`
	Interactive bool   `json:"allowInteractiveAuthentication,omitempty"`
}

type imageListParams struct {
	imageParams
	AcquireMetadata AcquireMetadata `json:"acquireMetadata,omitempty"`
}

// GetImage returns the image called name; md asks for its hostname, machine ID,
// machine-info and os-release.
func (c *Client) GetImage(ctx context.Context, name string, md AcquireMetadata) (Image, error) {
	var img Image
	err := c.call(ctx, "io.systemd.MachineImage.List", imageListParams{imageParams{name, c.interactive}, md}, &img)
	return img, err
}

// ListImages yields every image, one reply at a time as the daemon streams
// them; after an error it yields nothing more. No images at all (the daemon
// answers NoSuchImage) is an empty sequence.
func (c *Client) ListImages(ctx context.Context, md AcquireMetadata) iter.Seq2[Image, error] {
	return func(yield func(Image, error) bool) {
		first := true
		stream(ctx, c, "io.systemd.MachineImage.List", imageListParams{imageParams{"", c.interactive}, md}, func(img Image, err error) bool {
			if first && errors.Is(err, ErrNoSuchImage) {
				return false
			}
			first = false
			return yield(img, err)
		})
	}
}

// ImageUpdate is what UpdateImage changes; nil fields stay as they are. The
// rename comes first, then the read-only state, then the limit.
type ImageUpdate struct {
	NewName  *string `json:"newName,omitempty"`
	ReadOnly *bool   `json:"readOnly,omitempty"`
	Limit    *uint64 `json:"limit,omitempty"`
}

// UpdateImage renames an image and/or changes its read-only state and limit.
func (c *Client) UpdateImage(ctx context.Context, name string, u ImageUpdate) error {
	return c.call(ctx, "io.systemd.MachineImage.Update", struct {
		imageParams
		ImageUpdate
	}{imageParams{name, c.interactive}, u}, nil)
}

// CloneImage copies the image into the pool as newName; it returns once the
// copy is complete. Cancelling ctx closes the connection, which stops the copy.
func (c *Client) CloneImage(ctx context.Context, name, newName string, readOnly bool) error {
	return c.call(ctx, "io.systemd.MachineImage.Clone", struct {
		imageParams
		NewName  string `json:"newName"`
		ReadOnly bool   `json:"readOnly,omitempty"`
	}{imageParams{name, c.interactive}, newName, readOnly}, nil)
}

// RemoveImage deletes the image.
func (c *Client) RemoveImage(ctx context.Context, name string) error {
	return c.call(ctx, "io.systemd.MachineImage.Remove", imageParams{name, c.interactive}, nil)
}

// SetPoolLimit sets the size limit of the pool directory (btrfs only).
func (c *Client) SetPoolLimit(ctx context.Context, limit uint64) error {
	return c.call(ctx, "io.systemd.MachineImage.SetPoolLimit", struct {
		Interactive bool   `json:"allowInteractiveAuthentication,omitempty"`
		Limit       uint64 `json:"limit"`
	}{c.interactive, limit}, nil)
}

// CleanMode is which images CleanPool removes.
type CleanMode string

const (
	CleanAll    CleanMode = "all"
	CleanHidden CleanMode = "hidden"
)

// RemovedImage is one image CleanPool removed; UsageExclusive is nil when unknown.
type RemovedImage struct {
	Name           string  `json:"name"`
	UsageExclusive *uint64 `json:"usageExclusive,omitempty"`
}

// CleanPool removes the images mode selects (but vendor images, .host and
// images in use) and yields each one removed. Nothing to remove (the daemon
// answers NoSuchImage) is an empty sequence.
func (c *Client) CleanPool(ctx context.Context, mode CleanMode) iter.Seq2[RemovedImage, error] {
	return func(yield func(RemovedImage, error) bool) {
		first := true
		stream(ctx, c, "io.systemd.MachineImage.CleanPool", struct {
			Interactive bool      `json:"allowInteractiveAuthentication,omitempty"`
			Mode        CleanMode `json:"mode"`
		}{c.interactive, mode}, func(r RemovedImage, err error) bool {
			if first && errors.Is(err, ErrNoSuchImage) {
				return false
			}
			first = false
			return yield(r, err)
		})
	}
}
