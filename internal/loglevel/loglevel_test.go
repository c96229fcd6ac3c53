package loglevel

import (
	"log/slog"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for n, want := range []string{"err", "err", "err", "err", "warning", "notice", "info", "debug"} {
		l := FromSyslog(n)
		if got := Name(l); got != want {
			t.Errorf("Name(FromSyslog(%d)) = %q, want %q", n, got, want)
		}
		if p, ok := Parse(want); !ok || p != l {
			t.Errorf("Parse(%q) = %v, %v; want %v", want, p, ok, l)
		}
	}
	if ToSyslog(Notice) != 5 || ToSyslog(slog.LevelError+4) != 3 || ToSyslog(slog.LevelDebug-4) != 7 {
		t.Error("ToSyslog of notice, above error or below debug")
	}
	if FromSyslog(99) != slog.LevelDebug || FromSyslog(-1) != slog.LevelError {
		t.Error("FromSyslog does not clamp")
	}
}

func TestParse(t *testing.T) {
	for _, s := range []string{"8", "-1", "verbose", "", "Info"} {
		if _, ok := Parse(s); ok {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
	for s, want := range map[string]slog.Level{"warn": slog.LevelWarn, "error": slog.LevelError, "5": Notice, "crit": slog.LevelError} {
		if got, ok := Parse(s); !ok || got != want {
			t.Errorf("Parse(%q) = %v, %v", s, got, ok)
		}
	}
}
