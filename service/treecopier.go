package service

import (
	"context"

	"github.com/machined-go/machined/service/containerfs"
)

// TreeCopier makes the tree copy of CopyFrom and CopyTo once the core has
// resolved both sides and chosen the identities and options. The back end
// (copyhelper/) makes it in a process of its own, as upstream does in a
// forked child; without one the copy runs in the daemon (containerfs.Copy).
// Either way ctx ending must leave no partial entry under its final name.
type TreeCopier interface {
	Copy(ctx context.Context, src, dst containerfs.Side, opt containerfs.Options) error
}

// inProcessCopier is the copier without a back end.
type inProcessCopier struct{}

func (inProcessCopier) Copy(ctx context.Context, src, dst containerfs.Side, opt containerfs.Options) error {
	return containerfs.Copy(ctx, src, dst, opt)
}
