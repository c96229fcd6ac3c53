package systemd

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"syscall"

	"github.com/godbus/dbus/v5"
	"github.com/machined-go/machined/service"
)

// scopeTasksMax is the TasksMax upstream machined gives every machine scope.
const scopeTasksMax = uint64(16384)

// property is one (sv) entry of StartTransientUnit's property array.
type property struct {
	Name  string
	Value dbus.Variant
}

// auxUnit is one a(sa(sv)) entry; machined never creates auxiliary units.
type auxUnit struct {
	Name  string
	Props []property
}

// CreateScope implements service.Units with StartTransientUnit(req.Unit, "fail",
// props, []) and waits for the start job's JobRemoved signal. The properties
// follow upstream machined's order: Slice, Description, PIDFDs (or PIDs),
// Delegate, CollectMode, AddRef, TasksMax, User (only for a non-root
// registrant), then req.Properties, last so that a caller's Description or
// TasksMax wins, each encoded with the D-Bus signature the core's whitelist
// gives its name (see toVariant).
//
// The leader goes in as a pidfd when one is known and the connection passes
// fds; a manager that does not understand PIDFDs is asked again with PIDs. When
// the job fails or the wait times out, the reference AddRef took is dropped
// (and a still pending scope stopped) in the background.
func (c *Client) CreateScope(ctx context.Context, req service.ScopeRequest) error {
	if err := c.subscribe(ctx); err != nil {
		return err
	}
	owner := c.managerOwner(ctx)

	// Listen before asking: the job may end, and its signal arrive, before the
	// reply carrying the job path does. Such signals wait in ch.
	ch := make(chan *dbus.Signal, 16)
	c.conn.Signal(ch)
	defer c.conn.RemoveSignal(ch)

	usePIDFD := req.LeaderPIDFD >= 0 && c.conn.SupportsUnixFDs()
	job, err := c.startTransient(ctx, req, usePIDFD)
	if err != nil && usePIDFD && hasName(err, errUnknownProperty, errPropertyReadOnly, errInvalidArgs) {
		c.log.Debug("service manager refused PIDFDs, retrying with PIDs", "unit", req.Unit, "err", err)
		job, err = c.startTransient(ctx, req, false)
	}
	if err != nil {
		if hasName(err, errUnitExists) {
			return fmt.Errorf("start unit %s: %v: %w", req.Unit, err, syscall.EEXIST)
		}
		return fmt.Errorf("start unit %s: %w", req.Unit, err)
	}

	// A start job normally ends at once; the bound mirrors the method call
	// timeout clients such as nspawn put on CreateMachine.
	wctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	result, err := waitJob(wctx, ch, job, owner)
	if err != nil {
		c.abandon(req.Unit, true)
		return fmt.Errorf("wait for start job %s of unit %s: %w", job, req.Unit, err)
	}
	if result != "done" {
		c.abandon(req.Unit, false)
		return fmt.Errorf("start job for unit %s failed with '%s'", req.Unit, result)
	}
	return nil
}

// startTransient sends StartTransientUnit and returns the job path.
func (c *Client) startTransient(ctx context.Context, req service.ScopeRequest, usePIDFD bool) (dbus.ObjectPath, error) {
	props, err := scopeProperties(req, usePIDFD)
	if err != nil {
		return "", err
	}
	var job dbus.ObjectPath
	err = c.call(ctx, "StartTransientUnit", req.Unit, "fail", props, []auxUnit{}).Store(&job)
	return job, err
}

// scopeProperties builds the property array of a machine scope.
func scopeProperties(req service.ScopeRequest, usePIDFD bool) ([]property, error) {
	slice := req.Slice
	if slice == "" {
		slice = "machine.slice"
	}
	props := []property{
		{"Slice", dbus.MakeVariant(slice)},
		{"Description", dbus.MakeVariant(req.Description)},
	}
	if usePIDFD {
		props = append(props, property{"PIDFDs", dbus.MakeVariant([]dbus.UnixFD{dbus.UnixFD(req.LeaderPIDFD)})})
	} else {
		props = append(props, property{"PIDs", dbus.MakeVariant([]uint32{uint32(req.LeaderPID)})})
	}
	props = append(props,
		property{"Delegate", dbus.MakeVariant(true)},
		property{"CollectMode", dbus.MakeVariant("inactive-or-failed")},
		property{"AddRef", dbus.MakeVariant(true)},
		property{"TasksMax", dbus.MakeVariant(scopeTasksMax)},
	)
	if req.UID != 0 {
		// User= is a string property (name or numeric id) in the manager.
		props = append(props, property{"User", dbus.MakeVariant(strconv.FormatUint(uint64(req.UID), 10))})
	}
	for _, p := range req.Properties {
		v, err := toVariant(p)
		if err != nil {
			return nil, err
		}
		props = append(props, property{p.Name, v})
	}
	return props, nil
}

// waitJob returns the result of job from the JobRemoved signals arriving on ch.
// With owner set, signals from any other sender are ignored, so a local client
// cannot fake the end of our job.
func waitJob(ctx context.Context, ch <-chan *dbus.Signal, job dbus.ObjectPath, owner string) (string, error) {
	for {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case s, ok := <-ch:
			if !ok {
				return "", errors.New("bus connection closed")
			}
			if s.Name != managerIf+".JobRemoved" || s.Path != managerPath || len(s.Body) != 4 {
				continue
			}
			if owner != "" && s.Sender != owner {
				continue
			}
			path, _ := s.Body[1].(dbus.ObjectPath)
			result, _ := s.Body[3].(string)
			if path == job {
				return result, nil
			}
		}
	}
}

// subscribe asks the manager to send us its signals and adds the match for
// JobRemoved, once per Client. Another user of the same connection may have
// subscribed already, which the manager reports as an error we ignore.
func (c *Client) subscribe(ctx context.Context) error {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	if c.subscribed {
		return nil
	}
	if err := c.call(ctx, "Subscribe").Store(); err != nil && !hasName(err, errAlreadySubscribed) {
		return fmt.Errorf("subscribe to service manager: %w", err)
	}
	mctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	err := c.conn.AddMatchSignalContext(mctx,
		dbus.WithMatchSender(busName),
		dbus.WithMatchObjectPath(managerPath),
		dbus.WithMatchInterface(managerIf),
		dbus.WithMatchMember("JobRemoved"))
	if err != nil {
		return fmt.Errorf("add match for JobRemoved: %w", err)
	}
	c.subscribed = true
	return nil
}

// managerOwner returns the unique bus name owning org.freedesktop.systemd1, or
// "" if it cannot be determined (then signals are not filtered by sender).
func (c *Client) managerOwner(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	var owner string
	if err := c.conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, busName).Store(&owner); err != nil {
		c.log.Debug("look up owner of service manager name", "err", err)
		return ""
	}
	return owner
}

// abandon undoes what a failed CreateScope left with the manager, in the
// background: stop the scope if its job may still run, and drop our reference.
func (c *Client) abandon(unit string, stop bool) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx := context.Background()
		if stop {
			if err := c.call(ctx, "StopUnit", unit, "fail").Store(new(dbus.ObjectPath)); err != nil && !hasName(err, errNoSuchUnit, errLoadFailed) {
				c.log.Warn("stop abandoned scope", "unit", unit, "err", err)
			}
		}
		if err := c.call(ctx, "UnrefUnit", unit).Store(); err != nil && !hasName(err, errNoSuchUnit, errLoadFailed) {
			c.log.Debug("unref abandoned scope", "unit", unit, "err", err)
		}
	}()
}
