package systemd

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// fakeManager is a small org.freedesktop.systemd1 for tests: it records what it
// is asked and answers as configured.
type fakeManager struct {
	conn *dbus.Conn

	mu    sync.Mutex
	calls []string     // "Method arg arg ..." in arrival order
	props [][]property // the property arrays of every StartTransientUnit
	aux   [][]auxUnit
	mode  []string

	cfg     fakeConfig // guarded by mu; tests change it with set
	nextJob uint32
}

// fakeConfig is how the fake answers.
type fakeConfig struct {
	rejectPIDFDs string // error name for a StartTransientUnit carrying PIDFDs
	startErr     string // error name for every StartTransientUnit
	result       string // JobRemoved result ("" = "done")
	emitBefore   bool   // send JobRemoved before the reply
	noJobRemoved bool   // never finish the job
	beforeReply  func(job dbus.ObjectPath)
	subscribeErr string        // error name for Subscribe
	stopErr      string        // error name for StopUnit
	killErr      string        // error name for KillUnit(Subgroup)
	block        time.Duration // StopUnit sleeps this long
	units        map[string]fakeUnit
}

// set changes the fake's behaviour under its lock (handlers run on other
// goroutines, and the bus socket is invisible to the race detector).
func (f *fakeManager) set(change func(*fakeConfig)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(&f.cfg)
}

func (f *fakeManager) config() fakeConfig {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg
}

type fakeUnit struct {
	ControlGroup string
}

func newFakeManager(t *testing.T, addr string) *fakeManager {
	t.Helper()
	f := &fakeManager{conn: connect(t, addr)}
	f.cfg.units = map[string]fakeUnit{}
	if err := f.conn.Export(f, managerPath, managerIf); err != nil {
		t.Fatal(err)
	}
	reply, err := f.conn.RequestName(busName, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own %s: %v %v", busName, reply, err)
	}
	return f
}

func (f *fakeManager) record(format string, args ...any) {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

// Calls returns the recorded calls.
func (f *fakeManager) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func fail(name string) *dbus.Error {
	return dbus.NewError(name, []any{"fake: " + name})
}

func (f *fakeManager) Subscribe() *dbus.Error {
	f.record("Subscribe")
	if cfg := f.config(); cfg.subscribeErr != "" {
		return fail(cfg.subscribeErr)
	}
	return nil
}

func (f *fakeManager) StartTransientUnit(name, mode string, props []property, aux []auxUnit) (dbus.ObjectPath, *dbus.Error) {
	f.record("StartTransientUnit %s %s", name, mode)
	cfg := f.config()
	hasFD := false
	for _, p := range props {
		if p.Name == "PIDFDs" {
			hasFD = true // arrives as []UnixFDIndex: see wireTap
		}
	}
	f.mu.Lock()
	f.props = append(f.props, props)
	f.aux = append(f.aux, aux)
	f.mode = append(f.mode, mode)
	f.nextJob++
	id := f.nextJob
	f.mu.Unlock()
	if hasFD && cfg.rejectPIDFDs != "" {
		return "", fail(cfg.rejectPIDFDs)
	}
	if cfg.startErr != "" {
		return "", fail(cfg.startErr)
	}
	job := dbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/job/%d", id))
	result := cfg.result
	if result == "" {
		result = "done"
	}
	// Unrelated jobs end too; the client must pick its own.
	f.conn.Emit(managerPath, managerIf+".JobRemoved", uint32(1000+id), dbus.ObjectPath("/org/freedesktop/systemd1/job/other"), "other.service", "failed")
	if cfg.beforeReply != nil {
		cfg.beforeReply(job)
	}
	switch {
	case cfg.noJobRemoved:
	case cfg.emitBefore:
		f.conn.Emit(managerPath, managerIf+".JobRemoved", id, job, name, result)
	default:
		go func() {
			time.Sleep(20 * time.Millisecond)
			f.conn.Emit(managerPath, managerIf+".JobRemoved", id, job, name, result)
		}()
	}
	return job, nil
}

func (f *fakeManager) StopUnit(name, mode string) (dbus.ObjectPath, *dbus.Error) {
	f.record("StopUnit %s %s", name, mode)
	cfg := f.config()
	time.Sleep(cfg.block)
	if cfg.stopErr != "" {
		return "", fail(cfg.stopErr)
	}
	return "/org/freedesktop/systemd1/job/stop", nil
}

func (f *fakeManager) KillUnit(name, whom string, sig int32) *dbus.Error {
	f.record("KillUnit %s %s %d", name, whom, sig)
	if cfg := f.config(); cfg.killErr != "" {
		return fail(cfg.killErr)
	}
	return nil
}

func (f *fakeManager) KillUnitSubgroup(name, whom, subgroup string, sig int32) *dbus.Error {
	f.record("KillUnitSubgroup %s %s %s %d", name, whom, subgroup, sig)
	if cfg := f.config(); cfg.killErr != "" {
		return fail(cfg.killErr)
	}
	return nil
}

func (f *fakeManager) UnrefUnit(name string) *dbus.Error {
	f.record("UnrefUnit %s", name)
	return nil
}

func (f *fakeManager) GetUnit(name string) (dbus.ObjectPath, *dbus.Error) {
	f.record("GetUnit %s", name)
	cfg := f.config()
	f.mu.Lock()
	_, ok := cfg.units[name]
	f.mu.Unlock()
	if !ok {
		return "", fail(errNoSuchUnit)
	}
	return f.exportUnit(name), nil
}

// exportUnit serves Properties.Get for a unit and returns its object path.
func (f *fakeManager) exportUnit(name string) dbus.ObjectPath {
	path := dbus.ObjectPath("/org/freedesktop/systemd1/unit/" + labelEscape(name))
	f.conn.Export(&fakeUnitObject{f: f, name: name}, path, "org.freedesktop.DBus.Properties")
	return path
}

type fakeUnitObject struct {
	f    *fakeManager
	name string
}

func (u *fakeUnitObject) Get(iface, prop string) (dbus.Variant, *dbus.Error) {
	u.f.record("Get %s %s.%s", u.name, iface, prop)
	if iface == unitIf && prop == "Id" {
		return dbus.MakeVariant(u.name), nil
	}
	return dbus.Variant{}, fail(errUnknownProperty)
}

// labelEscape is the bus path escaping systemd uses for unit object paths.
func labelEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "_%02x", c)
		}
	}
	return b.String()
}

// pidOfFD returns the PID a pidfd refers to, from its fdinfo.
func pidOfFD(fd int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			pid, _ := strconv.Atoi(strings.TrimSpace(v))
			return pid
		}
	}
	return -1
}

// wireTap is an outgoing interceptor on the client's connection. It records the
// StartTransientUnit property arrays exactly as the client hands them to godbus,
// and the PID behind every PIDFDs fd, then detaches the fds from the message:
// godbus v5.2.4 panics in its reader goroutine when it decodes an "ah" that
// carries real fds ("reflect.Set: value of type dbus.UnixFD is not assignable to
// type dbus.UnixFDIndex"), which would take the fake, and the test binary, down.
// The wire signature stays "ah"; only the SCM_RIGHTS payload is dropped.
type wireTap struct {
	mu    sync.Mutex
	props [][]property
	fdPID []int
}

func (w *wireTap) intercept(msg *dbus.Message) {
	if msg.Type != dbus.TypeMethodCall || msg.Headers[dbus.FieldMember].Value() != "StartTransientUnit" || len(msg.Body) != 4 {
		return
	}
	props, ok := msg.Body[2].([]property)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.props = append(w.props, append([]property(nil), props...))
	out := make([]property, len(props))
	for i, p := range props {
		out[i] = p
		if fds, ok := p.Value.Value().([]dbus.UnixFD); ok && p.Name == "PIDFDs" {
			idx := make([]dbus.UnixFDIndex, len(fds))
			for j, fd := range fds {
				w.fdPID = append(w.fdPID, pidOfFD(int(fd)))
				idx[j] = dbus.UnixFDIndex(j)
			}
			out[i].Value = dbus.MakeVariant(idx)
		}
	}
	msg.Body[2] = out
}
