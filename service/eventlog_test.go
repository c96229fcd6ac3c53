package service

import (
	"context"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// recordingHandler keeps every record it is handed.
type recordingHandler struct {
	mu      sync.Mutex
	records []slog.Record
	level   slog.Level
}

func (h *recordingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func recordAttrs(r slog.Record) map[string]string {
	out := map[string]string{}
	r.Attrs(func(a slog.Attr) bool { out[a.Key] = a.Value.String(); return true })
	return out
}

// Register and Unregister each log one info record with the journal fields
// sd-journal readers match on, and without the caller lookup (PC 0) that no
// handler of the daemon uses; below info level nothing is handed over.
func TestRegistryEventRecords(t *testing.T) {
	h := &recordingHandler{}
	m, err := New(Config{StateDir: filepath.Join(t.TempDir(), "machines"), Logger: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	leader := startSleep(t)
	ctx := context.Background()
	if _, err := m.Register(ctx, root, RegisterRequest{Name: "logged", Class: "container", Leader: leader.Process.Pid}); err != nil {
		t.Fatal(err)
	}
	if err := m.Unregister(ctx, root, Selector{Name: "logged"}); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	recs := append([]slog.Record(nil), h.records...)
	h.mu.Unlock()
	want := []struct {
		msg   string
		attrs map[string]string
	}{
		{"New machine logged.", map[string]string{"NAME": "logged", "LEADER": strconv.Itoa(leader.Process.Pid), "MESSAGE_ID": "24d8d4452573402496068381a6312df2"}},
		{"Machine logged terminated.", map[string]string{"NAME": "logged", "reason": "unregistered", "MESSAGE_ID": "58432bd3bace477cb514b56381b8a758"}},
	}
	var got []slog.Record
	for _, r := range recs {
		if r.Message == want[0].msg || r.Message == want[1].msg {
			got = append(got, r)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("records %v, want the two events", recs)
	}
	for i, w := range want {
		r := got[i]
		if r.Message != w.msg || r.Level != slog.LevelInfo || r.PC != 0 || r.Time.IsZero() {
			t.Errorf("record %d: %q level %v pc %#x time %v", i, r.Message, r.Level, r.PC, r.Time)
		}
		if a := recordAttrs(r); len(a) != len(w.attrs) {
			t.Errorf("record %d attrs %v, want %v", i, a, w.attrs)
		} else {
			for k, v := range w.attrs {
				if a[k] != v {
					t.Errorf("record %d: %s=%q, want %q", i, k, a[k], v)
				}
			}
		}
	}

	h.mu.Lock()
	h.records, h.level = nil, slog.LevelWarn
	h.mu.Unlock()
	if _, err := m.Register(ctx, root, RegisterRequest{Name: "quiet", Class: "container", Leader: leader.Process.Pid}); err != nil {
		t.Fatal(err)
	}
	if err := m.Unregister(ctx, root, Selector{Name: "quiet"}); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.records) != 0 {
		t.Errorf("at warning level: %d records handed over", len(h.records))
	}
}
