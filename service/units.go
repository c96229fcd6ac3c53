package service

import (
	"context"
	"syscall"
)

// ScopeRequest asks a unit backend to create the scope unit of a machine and move
// its leader into it (Register with allocateUnit, D-Bus CreateMachine).
type ScopeRequest struct {
	Unit        string // "machine-<escaped name>.scope"
	Slice       string // validated by the core, never the root slice
	Description string // "Container NAME" / "Virtual Machine NAME"
	LeaderPID   int
	LeaderPIDFD int // -1 when unknown
	UID         uint32
	// Properties are extra scope properties from the caller whose names and
	// value types the core has checked against its whitelist; the systemd
	// backend encodes each with its property's D-Bus signature, the cgroup
	// backend ignores them.
	Properties []UnitProperty
}

// UnitProperty is one (name, value) scope property. The value is typed so that
// no front end's wire representation travels through the core: the D-Bus front
// end converts a caller's variant into it, and a back end converts it back to
// what its service manager reads.
type UnitProperty struct {
	Name  string
	Value PropertyValue
}

// Units creates, stops and signals the units machines live in. Two backends
// exist: systemd's own manager over D-Bus (units/systemd, where systemd runs)
// and a built-in cgroup v2 backend (units/cgroup) for hosts without systemd.
//
// Implementations must be safe for concurrent use and must not call back into the
// Manager.
type Units interface {
	// Name says which backend this is, for logs ("systemd", "cgroup").
	Name() string
	// CreateScope creates req.Unit with the leader in it. It returns when the unit
	// exists (the systemd backend waits for the start job).
	CreateScope(ctx context.Context, req ScopeRequest) error
	// Stop stops the unit: every process in it gets SIGTERM, then SIGKILL once a
	// grace period has passed. It returns once the stop has been initiated.
	Stop(ctx context.Context, unit string) error
	// Kill sends sig to every process of the unit, or of its subgroup when
	// subgroup is not empty.
	Kill(ctx context.Context, unit, subgroup string, sig syscall.Signal) error
	// Release drops what the backend holds for a unit machined created (systemd:
	// UnrefUnit; cgroup: remove the directory once it is empty).
	Release(unit string)
}
