// Package peer runs upstream systemd-machined beside ours, for the side-by-side
// benchmark and for tests that check a client against upstream: 257 from the
// Debian 13 tree that `make deps` debootstraps.
//
// It must import nothing of this module.
package peer
