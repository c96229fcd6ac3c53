package service

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// The names a resolver may ask about are the machines' but .host's; a name
// below a machine's is in its subtree; a registration and a removal wake
// every watcher at once.
func TestHostNames(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	names, changed := m.WatchHostNames()
	if len(names) != 0 {
		t.Fatalf("names of an empty registry: %v", names)
	}
	for _, name := range []string{"web", "db.lab"} {
		if _, err := m.Register(ctx, root, RegisterRequest{Name: name, Class: "container", Leader: startSleep(t).Process.Pid}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-changed:
	default:
		t.Fatal("a registration did not wake the watcher")
	}
	names, changed = m.WatchHostNames()
	if !slices.Equal(names, []string{"db.lab", "web"}) || !slices.Equal(m.HostNames(), names) {
		t.Errorf("names %v, HostNames %v", names, m.HostNames())
	}
	for name, want := range map[string]NameMatch{
		"web":          NameOfMachine,
		"web.":         NameOfMachine,
		"db.lab":       NameOfMachine,
		"www.web":      NameBelowMachine,
		"a.b.db.lab":   NameBelowMachine,
		"lab":          NameUnknown,
		"web2":         NameUnknown,
		".host":        NameUnknown,
		"x..host":      NameUnknown,
		"":             NameUnknown,
		"webweb":       NameUnknown,
		"example.org.": NameUnknown,
	} {
		got, mi := m.MatchHostName(name)
		if got != want {
			t.Errorf("MatchHostName(%q) = %v, want %v", name, got, want)
		}
		if got == NameOfMachine && mi.Name != strings.TrimSuffix(name, ".") {
			t.Errorf("MatchHostName(%q) gave machine %q", name, mi.Name)
		}
	}
	mi, _ := m.Get(root, Selector{Name: "web"})
	if err := m.Terminate(ctx, root, Selector{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "web gone", func() bool { _, err := m.Get(root, Selector{Name: mi.Name}); return err != nil })
	select {
	case <-changed:
	default:
		t.Fatal("a removal did not wake the watcher")
	}
	if names, _ := m.WatchHostNames(); !slices.Equal(names, []string{"db.lab"}) {
		t.Errorf("after the removal: %v", names)
	}
}

// The next change's channel is made only when a watcher asks for one: with
// nobody watching, a change allocates nothing. Watchers that ask between two
// changes share one channel, and one asked for after a change waits for the
// next.
func TestHostNamesChannelOnDemand(t *testing.T) {
	m := newTestManager(t)
	change := func() {
		m.mu.Lock()
		m.hostNamesChangedLocked()
		m.mu.Unlock()
	}
	if allocs := testing.AllocsPerRun(100, change); allocs != 0 {
		t.Fatalf("a change with nobody watching: %v allocations, want 0", allocs)
	}
	_, a := m.WatchHostNames()
	_, b := m.WatchHostNames()
	if a != b {
		t.Fatal("two watchers between changes got different channels")
	}
	change()
	for _, ch := range []<-chan struct{}{a, b} {
		select {
		case <-ch:
		default:
			t.Fatal("a change did not wake a watcher")
		}
	}
	_, c := m.WatchHostNames()
	select {
	case <-c:
		t.Fatal("a watcher asking after the change was woken by it")
	default:
	}
	change()
	select {
	case <-c:
	default:
		t.Fatal("the next change did not wake the later watcher")
	}
}
