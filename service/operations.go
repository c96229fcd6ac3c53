package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/machined-go/machined/service/ops"
)

// operationShutdownGrace is how long Close waits for running operations to notice
// that they were cancelled before it moves on.
const operationShutdownGrace = 5 * time.Second

// runOperation runs fn as a long operation on machine mc (nil for none): at most
// ops.Max at once, ended when the caller's ctx ends, when mc goes away, or when
// the daemon stops. The cap answers ErrTooManyOperations.
func (m *Manager) runOperation(ctx context.Context, mc *machine, fn func(ctx context.Context) error) error {
	var owner any
	name := ""
	if mc != nil {
		owner, name = mc, mc.name
	}
	err := m.ops.Run(ctx, owner, func(ctx context.Context) error {
		// Say why an operation was cut short while it still runs: the
		// caller left, the machine went away, the daemon stops.
		stop := context.AfterFunc(ctx, func() {
			m.log.Debug("operation cancelled", "machine", name, "cause", context.Cause(ctx))
		})
		defer stop()
		return fn(ctx)
	})
	if err != nil && !errors.Is(err, ops.ErrTooMany) {
		m.log.Debug("operation failed", "machine", name, "err", err)
	}
	if errors.Is(err, ops.ErrTooMany) {
		return errTooManyOperations()
	}
	return err
}

func errTooManyOperations() error {
	return fmt.Errorf("at most %d operations may run at once: %w", ops.Max, ErrTooManyOperations)
}

// stopOperations ends every running operation on shutdown.
func (m *Manager) stopOperations() {
	ctx, cancel := context.WithTimeout(context.Background(), operationShutdownGrace)
	defer cancel()
	if err := m.ops.Shutdown(ctx); err != nil {
		m.log.Warn("operations still running at shutdown", "running", m.ops.Running())
	}
}
