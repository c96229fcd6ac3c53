package images

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Clean removes every image mode selects (all, or only the hidden ones), except
// vendor images and the host, skipping images in use (EBUSY). It stops at the
// first other failure, returning what it removed so far with the error. It also
// finishes removals that were cancelled half way.
func (p *Pool) Clean(ctx context.Context, mode CleanMode) ([]Removed, error) {
	if mode != CleanAll && mode != CleanHidden {
		return nil, fmt.Errorf("clean mode %q: %w", mode, unix.EINVAL)
	}
	for _, dir := range p.searchPath() {
		if err := p.sweepRemovals(ctx, dir); err != nil {
			return nil, err
		}
	}
	imgs, err := p.List()
	if err != nil {
		return nil, err
	}
	var removed []Removed
	for _, img := range imgs {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		if immutableImage(img) || mode == CleanHidden && !img.Hidden() {
			continue
		}
		err := p.remove(ctx, img)
		switch {
		case err == nil:
			removed = append(removed, Removed{Name: img.Name, UsageExclusive: img.UsageExclusive})
		case errors.Is(err, unix.EBUSY):
			// In use: skipped, as upstream does.
		case errors.Is(err, unix.ENOENT):
			// Gone meanwhile.
		default:
			return removed, fmt.Errorf("failed to remove image %q: %w", img.Name, err)
		}
	}
	return removed, nil
}
