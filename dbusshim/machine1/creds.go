package machine1

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/quicksys"
	"github.com/machined-go/machined/service/proc"
)

// maxCachedCreds bounds the credential cache; past it an arbitrary entry goes.
const maxCachedCreds = 4096

// credTimeout bounds one GetConnectionCredentials call.
const credTimeout = 10 * time.Second

// creds is what the bus told us about a sender.
type creds struct {
	uid     uint32
	pid     int
	pidfd   int    // ours; -1 when none could be had
	pidfdID uint64 // its pidfs inode, read once; 0 when unknown
}

// credCache keeps the bus's credentials per unique name. Unique names are
// never reused and the bus records credentials when a peer connects, so an
// entry stays right until the name disconnects (NameOwnerChanged to "").
type credCache struct {
	log *slog.Logger

	mu   sync.Mutex
	m    map[string]creds
	conn *dbus.Conn
	sig  chan *dbus.Signal
	done chan struct{}
	wg   sync.WaitGroup

	// onGone, when set before start, hears of every unique name that left
	// the bus (senderwatch.go ends the operations it asked for).
	onGone func(name string)
}

func newCredCache(log *slog.Logger) *credCache {
	return &credCache{log: log, m: map[string]creds{}, done: make(chan struct{})}
}

// start watches disconnections on conn.
func (cc *credCache) start(ctx context.Context, conn *dbus.Conn) error {
	cc.mu.Lock()
	cc.conn = conn
	cc.mu.Unlock()
	mctx, cancel := context.WithTimeout(ctx, credTimeout)
	defer cancel()
	err := conn.AddMatchSignalContext(mctx,
		dbus.WithMatchSender("org.freedesktop.DBus"),
		dbus.WithMatchInterface("org.freedesktop.DBus"),
		dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(2, ""))
	if err != nil {
		return fmt.Errorf("watch bus disconnections: %w", err)
	}
	cc.sig = make(chan *dbus.Signal, 256)
	conn.Signal(cc.sig)
	cc.wg.Add(1)
	go func() {
		defer cc.wg.Done()
		for {
			select {
			case <-cc.done:
				return
			case s, ok := <-cc.sig:
				if !ok {
					return
				}
				if s.Name != "org.freedesktop.DBus.NameOwnerChanged" || len(s.Body) != 3 {
					continue
				}
				name, _ := s.Body[0].(string)
				newOwner, _ := s.Body[2].(string)
				if newOwner == "" && len(name) > 0 && name[0] == ':' {
					cc.drop(name)
					if cc.onGone != nil {
						cc.onGone(name)
					}
				}
			}
		}
	}()
	return nil
}

func (cc *credCache) close() {
	select {
	case <-cc.done:
	default:
		close(cc.done)
	}
	cc.mu.Lock()
	conn := cc.conn
	cc.mu.Unlock()
	if conn != nil && cc.sig != nil {
		conn.RemoveSignal(cc.sig)
	}
	cc.wg.Wait()
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for name, c := range cc.m {
		closeFD(c.pidfd)
		delete(cc.m, name)
	}
}

func (cc *credCache) drop(name string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if c, ok := cc.m[name]; ok {
		closeFD(c.pidfd)
		delete(cc.m, name)
	}
}

// get returns the sender's credentials, asking the bus once per sender.
func (cc *credCache) get(ctx context.Context, sender string) (creds, error) {
	if sender == "" {
		return creds{}, errorf(ErrAccessDenied, "Caller has no bus name")
	}
	cc.mu.Lock()
	c, ok := cc.m[sender]
	conn := cc.conn
	cc.mu.Unlock()
	if ok {
		return c, nil
	}
	if conn == nil {
		return creds{}, errors.New("no bus connection")
	}
	ctx, cancel := context.WithTimeout(ctx, credTimeout)
	defer cancel()
	var m map[string]dbus.Variant
	err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetConnectionCredentials", 0, sender).Store(&m)
	if err != nil {
		closeVariantFDs(m)
		return creds{}, fmt.Errorf("credentials of %s: %w", sender, err)
	}
	c, err = parseCreds(m)
	if err != nil {
		return creds{}, fmt.Errorf("credentials of %s: %w", sender, err)
	}

	cc.mu.Lock()
	defer cc.mu.Unlock()
	if old, ok := cc.m[sender]; ok { // raced with another call from the same sender
		closeFD(c.pidfd)
		return old, nil
	}
	if len(cc.m) >= maxCachedCreds {
		for name, old := range cc.m {
			closeFD(old.pidfd)
			delete(cc.m, name)
			break
		}
	}
	cc.m[sender] = c
	return c, nil
}

// parseCreds takes UnixUserID and ProcessID, and ProcessFD when the bus sends
// one (dbus-broker, dbus-daemon ≥ 1.15.8); without it the process is pinned
// by a pidfd opened from its PID now, while its connection is alive.
func parseCreds(m map[string]dbus.Variant) (creds, error) {
	c := creds{pidfd: -1}
	uid, ok := m["UnixUserID"].Value().(uint32)
	if !ok {
		closeVariantFDs(m)
		return c, errors.New("bus reported no UnixUserID")
	}
	c.uid = uid
	if pid, ok := m["ProcessID"].Value().(uint32); ok {
		c.pid = int(pid)
	}
	if fd, ok := m["ProcessFD"].Value().(dbus.UnixFD); ok {
		c.pidfd = int(fd)
		if c.pid == 0 {
			if pid, err := proc.PidOfPidfd(c.pidfd); err == nil {
				c.pid = pid
			}
		}
	} else if c.pid > 0 {
		if fd, err := unix.PidfdOpen(c.pid, 0); err == nil {
			c.pidfd = fd
		}
	}
	c.pidfdID = quicksys.PidfdID(c.pidfd)
	return c, nil
}

// dupPIDFD returns a dup of the sender's cached pidfd for one call, or -1.
func (cc *credCache) dupPIDFD(sender string) int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	c, ok := cc.m[sender]
	if !ok || c.pidfd < 0 {
		return -1
	}
	fd, err := quicksys.DupCloexec(c.pidfd)
	if err != nil {
		return -1
	}
	return fd
}

func closeFD(fd int) {
	if fd >= 0 {
		quicksys.Close(fd)
	}
}

func closeVariantFDs(m map[string]dbus.Variant) {
	for _, v := range m {
		if fd, ok := v.Value().(dbus.UnixFD); ok {
			closeFD(int(fd))
		}
	}
}
