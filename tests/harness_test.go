package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/machined-go/machined/client"
	"github.com/machined-go/machined/internal/dialas"
	vl "github.com/varlink/go/varlink"
)

var (
	raceEnabled bool
	daemonBin   string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "machined-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755)
	daemonBin = filepath.Join(dir, "machined")
	args := []string{"build", "-o", daemonBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "../cmd/machined")...)
	if !raceEnabled {
		// As make build: static, as installed (the race detector needs cgo).
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building machined:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// plainBin is machined built as make build builds it, made once when the
// tests run with the race detector.
var plainBin struct {
	once sync.Once
	path string
	err  error
}

// plainDaemonBin returns a machined built without the race detector even when
// the tests have it, for what the detector changes: a race-built daemon keeps
// a shadow of every heap page it ever touched, which it never gives back.
func plainDaemonBin(t *testing.T) string {
	t.Helper()
	if !raceEnabled {
		return daemonBin
	}
	plainBin.once.Do(func() {
		plainBin.path = daemonBin + "-plain"
		cmd := exec.Command("go", "build", "-o", plainBin.path, "../cmd/machined")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			plainBin.err = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if plainBin.err != nil {
		t.Fatalf("building machined without the race detector: %v", plainBin.err)
	}
	return plainBin.path
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: leaders in other users' namespaces, cgroups and uid switching (CI runs as root)")
	}
}

func varlinkctlPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("varlinkctl")
	if err != nil {
		t.Fatal("varlinkctl not installed: run `make deps` (tests/setup/install-deps.sh)")
	}
	return p
}

// daemon is one running bin/machined on its own runtime directory.
type daemon struct {
	t    *testing.T
	dir  string
	bin  string // "" means daemonBin
	args []string
	cmd  *exec.Cmd
	log  *os.File
	env  []string
}

func (d *daemon) sock() string {
	return filepath.Join(d.dir, "systemd", "machine", "io.systemd.Machine")
}
func (d *daemon) stateDir() string { return filepath.Join(d.dir, "systemd", "machines") }

// userdbSock is the daemon's userdb socket (its default, under the runtime dir).
func (d *daemon) userdbSock() string {
	return filepath.Join(d.dir, "systemd", "userdb", "io.systemd.Machine")
}

func newRuntimeDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "machined-it-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startLogged starts cmd with its output going to the file logPath, and ends
// it with SIGTERM when the test ends; what names it in the log shown when the
// test failed. It returns what the file holds so far, for tests that wait on
// a line of it.
func startLogged(t *testing.T, cmd *exec.Cmd, logPath, what string) (logged func() string) {
	t.Helper()
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logged = func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s log:\n%s", what, logged())
		}
	})
	return logged
}

// startDaemon starts machined with --bus none and the given extra flags.
func startDaemon(t *testing.T, extra ...string) *daemon {
	t.Helper()
	return startDaemonOf(t, daemonBin, extra...)
}

// startDaemonOf is startDaemon with the binary bin.
func startDaemonOf(t *testing.T, bin string, extra ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, dir: newRuntimeDir(t), bin: bin}
	d.args = append([]string{"--runtime-dir", d.dir, "--bus", "none", "--log-level", "debug"}, extra...)
	// The daemon behaves as on a host without systemd, whatever this host
	// runs: --units auto picks the cgroup backend.
	d.env = append(d.env, noSystemdEnv(d.dir))
	d.start()
	t.Cleanup(func() {
		d.stop(syscall.SIGTERM)
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(d.dir, "daemon.log"))
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("daemon log (tail):\n%s", b)
		}
	})
	return d
}

func (d *daemon) start() {
	d.t.Helper()
	lf, err := os.OpenFile(filepath.Join(d.dir, "daemon.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	d.log = lf
	bin := daemonBin
	if d.bin != "" {
		bin = d.bin
	}
	d.cmd = exec.Command(bin, d.args...)
	d.cmd.Stdout, d.cmd.Stderr = lf, lf
	d.cmd.Env = append(os.Environ(), d.env...)
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.waitReady()
}

func (d *daemon) waitReady() {
	d.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if d.getInfo() == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatal("daemon did not come up")
}

func (d *daemon) stop(sig syscall.Signal) {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-done
	}
	d.cmd = nil
	d.log.Close()
}

// Restart stops the daemon with sig and starts it again on the same directory.
func (d *daemon) Restart(sig syscall.Signal) {
	d.t.Helper()
	d.stop(sig)
	d.start()
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

// getInfo calls org.varlink.service.GetInfo on a fresh connection, which
// client/ does not offer: it is how the tests see that the daemon serves.
func (d *daemon) getInfo() error {
	c, err := vl.NewConnection(context.Background(), "unix:"+d.sock())
	if err != nil {
		return err
	}
	defer c.Close()
	var interfaces []string
	return c.GetInfo(context.Background(), nil, nil, nil, nil, &interfaces)
}

// run runs a command and returns stdout, stderr and its exit code.
func run(t *testing.T, env []string, cred *syscall.Credential, name string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(append(os.Environ(), "SYSTEMD_LOG_LEVEL=err", "SYSTEMD_PAGER=cat", "SYSTEMD_COLORS=0"), env...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out.String(), errb.String(), code
}

// varlinkctl runs the real client and returns stdout, stderr and the exit code.
func varlinkctl(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return varlinkctlAs(t, nil, args...)
}

func varlinkctlAs(t *testing.T, cred *syscall.Credential, args ...string) (string, string, int) {
	t.Helper()
	return run(t, nil, cred, varlinkctlPath(t), args...)
}

// leader is a process that stands in for a container's PID 1.
type leader struct {
	cmd *exec.Cmd
	pid int
}

func (l *leader) kill() {
	if l.cmd.Process != nil {
		l.cmd.Process.Kill()
		l.cmd.Wait()
	}
}

func spawnLeaderWith(t *testing.T, attr *syscall.SysProcAttr) *leader {
	t.Helper()
	cmd := exec.Command("sleep", "100000")
	if attr == nil {
		attr = &syscall.SysProcAttr{}
	}
	attr.Setsid = true
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &leader{cmd: cmd, pid: cmd.Process.Pid}
	t.Cleanup(l.kill)
	return l
}

func spawnLeader(t *testing.T) *leader { return spawnLeaderWith(t, nil) }

// spawnUserNSLeader starts a leader in a new user namespace mapping 0..65535 to
// shift..shift+65535.
func spawnUserNSLeader(t *testing.T, shift int) *leader {
	t.Helper()
	needRoot(t)
	needUserNS(t)
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: shift, Size: 65536}}
	return spawnLeaderWith(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: m})
}

// eventually polls cond for up to 10 s; it checks conditions, never durations.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// register registers a container with a plain PID leader through the client.
func register(t *testing.T, d *daemon, name string, pid int) {
	t.Helper()
	registerReq(t, d, client.RegisterRequest{Name: name, LeaderPID: pid})
}

// registerReq registers r through the client; Class defaults to container.
func registerReq(t *testing.T, d *daemon, r client.RegisterRequest) {
	t.Helper()
	if r.Class == "" {
		r.Class = client.ClassContainer
	}
	c := oneShotClient(t, d)
	defer c.Close()
	if err := c.Register(context.Background(), r); err != nil {
		t.Fatalf("Register %s: %v", r.Name, err)
	}
}

// unregister unregisters a machine through the client.
func unregister(t *testing.T, d *daemon, name string) {
	t.Helper()
	c := oneShotClient(t, d)
	defer c.Close()
	if err := c.Unregister(context.Background(), client.ByName(name)); err != nil {
		t.Fatalf("Unregister %s: %v", name, err)
	}
}

// getOne looks a machine up by name through the client; the error, if any, is
// a *client.Error (a transport error fails the test).
func getOne(t *testing.T, d *daemon, name string) (client.Machine, error) {
	t.Helper()
	c := oneShotClient(t, d)
	defer c.Close()
	m, err := c.Get(context.Background(), client.ByName(name), client.MetadataNo)
	return m, daemonError(t, err)
}

func gone(t *testing.T, d *daemon, name string) bool {
	_, err := getOne(t, d, name)
	return errors.Is(err, client.ErrNoSuchMachine)
}

// oneShotClient is a client for the caller to close once its call is done, so
// that polling loops do not pile connections up until the test ends.
func oneShotClient(t *testing.T, d *daemon) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), d.sock())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dialClient is a client of the daemon, closed when the test ends.
func dialClient(t *testing.T, d *daemon, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), d.sock(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// asNobody makes the client connect as uid/gid 65534.
func asNobody() client.Option {
	return client.WithDialer(func(ctx context.Context, path string) (net.Conn, error) {
		return dialas.Unix(path, 65534, 65534)
	})
}

// dialOneConn dials a client that reports, through its second result, whether
// it ever had to connect again: the client redials silently when the daemon
// has closed its idle connection, and tests that require one connection to
// serve every call check this.
func dialOneConn(path string) (*client.Client, func() bool, error) {
	var dials atomic.Int32
	c, err := client.Dial(context.Background(), path, client.WithDialer(func(ctx context.Context, path string) (net.Conn, error) {
		dials.Add(1)
		var nd net.Dialer
		return nd.DialContext(ctx, "unix", path)
	}))
	return c, func() bool { return dials.Load() > 1 }, err
}

// daemonError returns err when it is nil or an error reply of the daemon, and
// fails the test on any other (transport) error.
func daemonError(t *testing.T, err error) error {
	t.Helper()
	var ce *client.Error
	if err != nil && !errors.As(err, &ce) {
		t.Fatalf("call failed at transport level: %v", err)
	}
	return err
}

// wantReply checks that err is the daemon's error reply called name.
func wantReply(t *testing.T, err error, name string) {
	t.Helper()
	var ce *client.Error
	if err == nil {
		t.Fatalf("call succeeded, want error %s", name)
	}
	if !errors.As(err, &ce) {
		t.Fatalf("call failed at transport level: %v, want error %s", err, name)
	}
	if ce.Name != name {
		t.Fatalf("error %v, want %s", ce, name)
	}
}

// wantInvalidReply checks that err is InvalidParameter naming param.
func wantInvalidReply(t *testing.T, err error, param string) {
	t.Helper()
	wantReply(t, err, "org.varlink.service.InvalidParameter")
	var ce *client.Error
	errors.As(err, &ce)
	if got := ce.Parameter(); got != param {
		t.Fatalf("InvalidParameter %q, want %q", got, param)
	}
}

// rawConn is a plain unix socket for protocol abuse.
func rawConn(t *testing.T, d *daemon) *net.UnixConn {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: d.sock(), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readReply reads one NUL-terminated message and decodes it.
func readReply(t *testing.T, c net.Conn) (map[string]any, error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	msg, err := readMessage(c)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(msg, &m); err != nil {
		t.Fatalf("bad reply %q: %v", msg, err)
	}
	return m, nil
}

// readMessage reads up to the next NUL and returns what came before it. Bytes
// after the NUL are dropped: callers send one request at a time.
func readMessage(c net.Conn) ([]byte, error) {
	var buf []byte
	b := make([]byte, 4096)
	for {
		n, err := c.Read(b)
		buf = append(buf, b[:n]...)
		if i := bytes.IndexByte(buf, 0); i >= 0 {
			return buf[:i], nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func sleepMs(n int) { time.Sleep(time.Duration(n) * time.Millisecond) }
