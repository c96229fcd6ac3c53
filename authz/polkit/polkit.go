package polkit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/service"
	"github.com/machined-go/machined/service/proc"
)

const (
	busName       = "org.freedesktop.PolicyKit1"
	authorityPath = dbus.ObjectPath("/org/freedesktop/PolicyKit1/Authority")
	checkMethod   = "org.freedesktop.PolicyKit1.Authority.CheckAuthorization"

	// flagAllowUserInteraction is CheckAuthorizationFlags.AllowUserInteraction.
	flagAllowUserInteraction = 1
)

// DefaultTimeout bounds one CheckAuthorization call. Interactive
// authentication waits for a person to type a password.
const DefaultTimeout = 2 * time.Minute

// Authority asks polkit. It is safe for concurrent use.
type Authority struct {
	// Timeout bounds each check; zero means DefaultTimeout. Set it before use.
	Timeout time.Duration

	conn *dbus.Conn // owned by the caller
	log  *slog.Logger
}

var _ service.Authorizer = (*Authority)(nil)

// New returns an Authority asking polkit over conn (a system bus connection
// the caller keeps owning).
func New(conn *dbus.Conn, log *slog.Logger) *Authority {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Authority{conn: conn, log: log}
}

// Available reports whether polkit is on conn's bus: running, or activatable.
func Available(ctx context.Context, conn *dbus.Conn) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var has bool
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, busName).Store(&has); err == nil && has {
		return true
	}
	var names []string
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.ListActivatableNames", 0).Store(&names); err != nil {
		return false
	}
	for _, n := range names {
		if n == busName {
			return true
		}
	}
	return false
}

// subject is polkit's (sa{sv}) subject.
type subject struct {
	Kind    string
	Details map[string]dbus.Variant
}

// result is CheckAuthorization's (bba{ss}).
type result struct {
	Authorized bool
	Challenge  bool
	Details    map[string]string
}

// Check implements service.Authorizer.
func (a *Authority) Check(ctx context.Context, c service.Caller, action string, details map[string]string) error {
	subj, err := subjectOf(c)
	if err != nil {
		return fmt.Errorf("polkit subject for uid %d: %v: %w", c.UID, err, service.ErrPermissionDenied)
	}
	var flags uint32
	if c.Interactive {
		flags |= flagAllowUserInteraction
	}
	if details == nil {
		details = map[string]string{}
	}
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var r result
	err = a.conn.Object(busName, authorityPath).CallWithContext(ctx, checkMethod, 0, subj, action, details, flags, "").Store(&r)
	if err != nil {
		a.log.Warn("polkit check failed", "action", action, "uid", c.UID, "err", err)
		return fmt.Errorf("polkit: %v: %w", err, service.ErrPermissionDenied)
	}
	switch {
	case r.Authorized:
		return nil
	case r.Challenge:
		return fmt.Errorf("%s needs interactive authentication: %w", action, service.ErrInteractiveAuth)
	}
	return fmt.Errorf("polkit denied %s: %w", action, service.ErrPermissionDenied)
}

// subjectOf names the caller to polkit: its bus name when it came over
// D-Bus (polkit then asks the bus, which cannot be raced), else its process.
func subjectOf(c service.Caller) (subject, error) {
	if c.BusName != "" {
		return subject{"system-bus-name", map[string]dbus.Variant{"name": dbus.MakeVariant(c.BusName)}}, nil
	}
	if c.PID <= 0 {
		return subject{}, errors.New("caller process unknown")
	}
	start, err := proc.StartTicks(c.PID)
	if err != nil {
		return subject{}, err
	}
	return subject{"unix-process", map[string]dbus.Variant{
		"pid":        dbus.MakeVariant(uint32(c.PID)),
		"start-time": dbus.MakeVariant(start),
		"uid":        dbus.MakeVariant(int32(c.UID)),
	}}, nil
}
