package main

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/machined-go/machined/service"
)

// fakeUnits stands for a backend; only its identity matters here.
type fakeUnits struct {
	service.Units
	name string
}

// fakeHost answers pickUnits' questions and records which backends it was
// asked to make (asking for systemd means dialling the system bus).
type fakeHost struct {
	runs, reachable, cgroupWorks bool
	askedSystemd, askedCgroup    bool
}

func (h *fakeHost) systemdRuns() bool { return h.runs }

func (h *fakeHost) systemd() (service.Units, error) {
	h.askedSystemd = true
	if !h.reachable {
		return nil, errors.New("org.freedesktop.systemd1 is not on the bus")
	}
	return &fakeUnits{name: "systemd"}, nil
}

func (h *fakeHost) cgroup() (service.Units, error) {
	h.askedCgroup = true
	if !h.cgroupWorks {
		return nil, errors.New("no cgroup2 hierarchy")
	}
	return &fakeUnits{name: "cgroup"}, nil
}

func TestPickUnits(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		mode                         string
		user                         bool // a per-user instance
		runs, reachable, cgroupWorks bool
		want                         string // backend picked, "" for none
		wantErr                      string // part of the error, "" for none
		dials                        bool   // whether the system bus is dialled
	}{
		// auto follows the host, whatever the shim's bus.
		{mode: "auto", runs: true, reachable: true, cgroupWorks: true, want: "systemd", dials: true},
		{mode: "auto", runs: true, reachable: false, cgroupWorks: true, wantErr: "--units cgroup or --units none overrides", dials: true},
		{mode: "auto", runs: false, reachable: true, cgroupWorks: true, want: "cgroup"},
		{mode: "auto", runs: false, reachable: false, cgroupWorks: true, want: "cgroup"},
		{mode: "auto", runs: false, cgroupWorks: false, want: ""},
		// A per-user instance: the user's manager when it answers, else
		// no scopes, never the cgroup backend nor a refusal to start.
		{mode: "auto", user: true, runs: true, reachable: true, cgroupWorks: true, want: "systemd", dials: true},
		{mode: "auto", user: true, runs: true, reachable: false, cgroupWorks: true, want: "", dials: true},
		{mode: "auto", user: true, runs: false, reachable: false, cgroupWorks: true, want: "", dials: true},
		// Explicit choices override the host.
		{mode: "systemd", runs: false, reachable: true, want: "systemd", dials: true},
		{mode: "systemd", runs: true, reachable: false, wantErr: "--units systemd", dials: true},
		{mode: "cgroup", runs: true, reachable: true, cgroupWorks: true, want: "cgroup"},
		{mode: "cgroup", runs: false, cgroupWorks: false, wantErr: "no cgroup2 hierarchy"},
		{mode: "none", runs: true, reachable: true, cgroupWorks: true, want: ""},
		{mode: "upstart", runs: true, reachable: true, cgroupWorks: true, wantErr: `unknown --units "upstart"`},
	} {
		h := &fakeHost{runs: tc.runs, reachable: tc.reachable, cgroupWorks: tc.cgroupWorks}
		u, err := pickUnits(tc.mode, tc.user, h, log)
		name := ""
		if u != nil {
			name = u.(*fakeUnits).name
		}
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%+v: err = %v, want one saying %q", tc, err, tc.wantErr)
		case tc.wantErr == "" && err != nil:
			t.Errorf("%+v: err = %v", tc, err)
		case name != tc.want:
			t.Errorf("%+v: picked %q, want %q", tc, name, tc.want)
		}
		if tc.user && h.askedCgroup {
			t.Errorf("%+v: a per-user instance asked for the cgroup backend", tc)
		}
		if h.askedSystemd != tc.dials {
			t.Errorf("%+v: asked systemd = %v, want %v", tc, h.askedSystemd, tc.dials)
		}
	}
}

// systemd is taken to run when its marker is a directory, as sd_booted() has it.
func TestSystemdRuns(t *testing.T) {
	old := systemdSystemDir
	t.Cleanup(func() { systemdSystemDir = old })
	t.Setenv("MACHINED_SYSTEMD_SYSTEM_DIR", "")
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h := &realHost{}
	for path, want := range map[string]bool{dir: true, file: false, filepath.Join(dir, "missing"): false} {
		systemdSystemDir = path
		if got := h.systemdRuns(); got != want {
			t.Errorf("systemdRuns with %s = %v, want %v", path, got, want)
		}
	}
	// The environment replaces the path, for the integration tests.
	systemdSystemDir = dir
	t.Setenv("MACHINED_SYSTEMD_SYSTEM_DIR", filepath.Join(dir, "missing"))
	if h.systemdRuns() {
		t.Error("MACHINED_SYSTEMD_SYSTEM_DIR was not honoured")
	}
}
