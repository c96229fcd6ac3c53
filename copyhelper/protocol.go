package copyhelper

import (
	"github.com/machined-go/machined/service/containerfs"
	"github.com/machined-go/machined/service/proc"
)

// Arg, as the first argument of the daemon's binary, makes it a copy helper.
const Arg = "__machined-copy-helper"

// The helper's fds: stdin carries the request and then stays open as a
// lifeline (the daemon holds the other end until the copy ends, so reading
// end-of-file means the daemon is gone), stdout the result, and these two the
// directories the copy's names are resolved in.
const (
	srcDirFD = 3
	dstDirFD = 4
)

// Bounds of what either side reads from the other.
const (
	maxRequest = 64 << 10
	maxResult  = 64 << 10
	maxStderr  = 4 << 10
)

// request is what the daemon sends: the names in the two directories, the
// identity each side's calls run as, and the copy's options.
type request struct {
	SrcName  string
	DstName  string
	SrcOwner proc.Owner
	DstOwner proc.Owner
	Options  containerfs.Options
}

// result is what the helper answers: the copy's error text and the errno it
// wraps (0 for none), so that the daemon's error table sees the same kinds as
// for a copy made in process.
type result struct {
	Error string
	Errno int
}
