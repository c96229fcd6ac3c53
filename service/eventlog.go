package service

import (
	"context"
	"log/slog"
	"time"
)

// logEvent logs a registry event (a machine came or went) at info level, as
// m.log.Info would but without looking up the caller's program counter: no
// handler of the daemon prints the source, and the stack walk was a third of
// the cost of the line every Register and Unregister writes.
func (m *Manager) logEvent(msg string, attrs ...slog.Attr) {
	ctx := context.Background()
	h := m.log.Handler()
	if !h.Enabled(ctx, slog.LevelInfo) {
		return
	}
	r := slog.NewRecord(time.Now(), slog.LevelInfo, msg, 0)
	r.AddAttrs(attrs...)
	_ = h.Handle(ctx, r)
}
