// Package images is the image pool of machined: it discovers the container and
// VM images in the search path, reads their metadata (hostname, machine-id,
// machine-info, os-release) and performs the operations on them (rename, clone,
// remove, mark read-only, quota limits, clean), taking the same locks
// systemd-nspawn takes so that an image in use is never changed under it.
//
// It is transport-free and core-free: it may import service/ops, service/proc,
// service/envfile and internal/..., but not service itself, a transport or a back
// end (TestImports enforces that). The core wraps the long operations (Clone,
// Remove, Clean) in its operations registry; this package only honours their
// context.
package images
