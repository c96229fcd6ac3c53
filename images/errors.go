package images

import "errors"

// The errors callers tell apart. Errors about the file system keep a wrapped
// syscall.Errno (errors.Is(err, syscall.EBUSY) etc.): EROFS for vendor images and
// .host (and, for MarkReadOnly, hidden ones) and for renaming a block device
// under /dev; EBUSY while an image is locked (in use by systemd-nspawn or
// another operation) and for the name .host as a new name; EOPNOTSUPP for
// limits off btrfs subvolumes, for cloning block devices and renaming versioned
// images; EEXIST (with ErrImageExists) for a taken name. A cancelled operation
// returns the context's error.
var (
	ErrNoSuchImage = errors.New("no such image")
	ErrImageExists = errors.New("image already exists")
	ErrInvalidName = errors.New("invalid image name")
)

// errNoVersion: a versioned directory without a usable entry, which is no image.
var errNoVersion = errors.New("no usable version in versioned directory")
