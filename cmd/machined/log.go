package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/machined-go/machined/internal/bufpool"
	"github.com/machined-go/machined/internal/loglevel"
)

// lineHandler writes one line per record. Under journald (JOURNAL_STREAM set) it
// prefixes the syslog priority as "<N>" and leaves timestamps to the journal;
// elsewhere it writes a timestamp and the level name. With a native journal
// connection (native), records go to journald as fields instead, and to stderr
// only when journald does not take them or the target is "console".
type lineHandler struct {
	mu      *sync.Mutex
	w       io.Writer
	level   slog.Leveler
	journal bool
	native  *journalSender
	target  *atomic.Value // string: the LogControl1 target last set; "null" mutes
	attrs   []slog.Attr
}

func newLineHandler(w io.Writer, level slog.Leveler) *lineHandler {
	h := &lineHandler{mu: &sync.Mutex{}, w: w, level: level, journal: os.Getenv("JOURNAL_STREAM") != "", target: new(atomic.Value)}
	h.target.Store("auto")
	return h
}

func (h *lineHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level() && h.target.Load() != "null"
}

// Target is LogControl1.LogTarget: what was set, "auto" at first.
func (h *lineHandler) Target() string { return h.target.Load().(string) }

// SetTarget accepts the targets we can honour: stderr ("auto", "console", and
// "journal" when stderr is the journal) or nothing ("null").
func (h *lineHandler) SetTarget(t string) error {
	switch t {
	case "auto", "console", "null":
	case "journal":
		if !h.journal {
			return fmt.Errorf("log target %q: stderr is not connected to the journal", t)
		}
	default:
		return fmt.Errorf("log target %q not supported", t)
	}
	h.target.Store(t)
	return nil
}

// Handle appends the line into a pooled buffer: every registration logs, and
// fmt and a fresh builder per line were 6 % of a registration's CPU.
func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
	if h.native != nil && h.target.Load() != "console" && h.sendNative(r) == nil {
		return nil
	}
	bp := lineBufs.Get()
	b := (*bp)[:0]
	if h.journal {
		b = append(b, '<')
		b = strconv.AppendInt(b, int64(loglevel.ToSyslog(r.Level)), 10)
		b = append(b, '>')
	} else {
		b = r.Time.AppendFormat(b, time.RFC3339Nano)
		b = append(b, ' ')
		level := r.Level.String()
		b = append(b, level...)
		for i := len(level); i < 5; i++ {
			b = append(b, ' ')
		}
		b = append(b, ' ')
	}
	b = append(b, r.Message...)
	write := func(a slog.Attr) bool {
		b = append(b, ' ')
		b = append(b, a.Key...)
		b = append(b, '=')
		b = strconv.AppendQuote(b, a.Value.String())
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	b = append(b, '\n')
	h.mu.Lock()
	_, err := h.w.Write(b)
	h.mu.Unlock()
	lineBufs.Put(bp, b)
	return err
}

var lineBufs = bufpool.New(256, 64<<10)

func (h *lineHandler) sendNative(r slog.Record) error {
	attrs := make([][2]string, 0, len(h.attrs)+r.NumAttrs())
	for _, a := range h.attrs {
		attrs = append(attrs, [2]string{a.Key, a.Value.String()})
	}
	r.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, [2]string{a.Key, a.Value.String()})
		return true
	})
	bp := lineBufs.Get()
	b := appendJournalEntry((*bp)[:0], loglevel.ToSyslog(r.Level), h.native.ident, r.Message, attrs)
	err := h.native.send(b)
	lineBufs.Put(bp, b)
	return err
}

func (h *lineHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *lineHandler) WithGroup(string) slog.Handler { return h }
