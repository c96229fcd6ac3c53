package main

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"testing"
)

func TestLineHandlerConsoleLine(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "")
	var out bytes.Buffer
	log := slog.New(newLineHandler(&out, slog.LevelInfo)).With("unit", "a b")
	log.Info("New machine x.", "LEADER", 42, "NAME", "quote\"d")
	log.Log(context.Background(), slog.LevelInfo+2, "odd level")
	log.Debug("below the level")
	want := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) INFO  New machine x\. unit="a b" LEADER="42" NAME="quote\\"d"\n` +
		`\S+ INFO\+2 odd level unit="a b"\n$`)
	if !want.Match(out.Bytes()) {
		t.Fatalf("log output:\n%s\nwant it to match %s", out.String(), want)
	}
}

func TestLineHandlerJournalAndNullTarget(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "8:1234")
	var out bytes.Buffer
	h := newLineHandler(&out, slog.LevelDebug)
	log := slog.New(h)
	log.Warn("disk full", "path", "/run")
	log.Debug("detail")
	if got, want := out.String(), "<4>disk full path=\"/run\"\n<7>detail\n"; got != want {
		t.Fatalf("journal lines %q, want %q", got, want)
	}
	if err := h.SetTarget("null"); err != nil {
		t.Fatal(err)
	}
	log.Error("muted")
	if out.Len() != len("<4>disk full path=\"/run\"\n<7>detail\n") {
		t.Fatalf("target null still wrote: %q", out.String())
	}
}
