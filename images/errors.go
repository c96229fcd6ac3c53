package images

import "errors"

// The errors callers tell apart. Errors about the file system keep a wrapped
// syscall.Errno (errors.Is(err, syscall.EBUSY) etc.): EROFS for vendor, .host and
// read-only images, EBUSY while an image is locked, EOPNOTSUPP for limits off
// btrfs and for cloning block devices, EEXIST (also ErrImageExists) for a taken
// name.
var (
	ErrNoSuchImage = errors.New("no such image")
	ErrImageExists = errors.New("image already exists")
	ErrInvalidName = errors.New("invalid image name")
)

var errNotImplemented = errors.New("not implemented")

// errNoVersion: a versioned directory without a usable entry, which is no image.
var errNoVersion = errors.New("no usable version in versioned directory")
