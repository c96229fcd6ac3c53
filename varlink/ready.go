package varlink

import (
	"context"
	"os"
)

// AfterReady holds each message until ready is closed, so that the daemon can
// accept connections while it is still restoring its state: a client that
// connects early waits for its answer instead of finding no socket. A
// connection that ends meanwhile stops waiting.
func AfterReady(ready <-chan struct{}, h Handler) Handler {
	return func(ctx context.Context, c *Conn, msg []byte, fds []*os.File) error {
		select {
		case <-ready:
		case <-ctx.Done():
			closeFiles(fds)
			return ctx.Err()
		}
		return h(ctx, c, msg, fds)
	}
}
