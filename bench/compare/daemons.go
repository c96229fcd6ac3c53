package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/internal/peer"
)

// Stock paths machined 252 uses, with no way to move them.
const (
	stockUserdbDir  = "/run/systemd/userdb"
	stockUserdbSock = "/run/systemd/userdb/io.systemd.Machine"
	stockStateDir   = "/run/systemd/machines"
	machined252     = "/lib/systemd/systemd-machined"
)

// daemon is one machined under test.
type daemon struct {
	key     string // "252", "257", "ours": column of the table
	label   string // for the version line
	version string

	machineSock string     // io.systemd.Machine Varlink socket; "" when there is none
	noVarlink   string     // why there is no Varlink machine API
	userdbSock  string     // io.systemd.UserDatabase socket (host path)
	bus         *busDaemon // the bus the harness started for it, if any
	busAddr     string     // a bus given on the command line, when bus is nil
	busConn     *dbus.Conn // set while the D-Bus side can be benchmarked
	noBus       string     // why it cannot
	exitNote    string     // what to report when a leader's exit goes unnoticed

	start  func() error // (re)starts the daemon on the same state
	cmd    *exec.Cmd
	logf   string
	onStop []func()
}

func (d *daemon) pid() int {
	if d.cmd == nil || d.cmd.Process == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// stop ends the daemon process by its recorded PID; its state stays.
func (d *daemon) stop() {
	stopProcess(d.cmd, 10*time.Second)
	d.cmd = nil
}

// restart stops the daemon and starts it again on its state, then waits for it
// to own its bus name again if it had it.
func (d *daemon) restart() error {
	d.stop()
	if err := d.start(); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	if d.busConn != nil {
		deadline := time.Now().Add(10 * time.Second)
		for !nameOwned(d.busConn) {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %s not owned again after a restart", d.key, m1Name)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// shutdown stops the daemon and its bus and removes what they left behind;
// with -logs the daemon's log is kept there.
func (d *daemon) shutdown() {
	if d.busConn != nil {
		d.busConn.Close()
		d.busConn = nil
	}
	d.stop()
	if keepLogs != "" && d.logf != "" {
		if b, err := os.ReadFile(d.logf); err == nil {
			os.MkdirAll(keepLogs, 0o755)
			os.WriteFile(filepath.Join(keepLogs, "machined-"+d.key+".log"), b, 0o644)
		}
	}
	for i := len(d.onStop) - 1; i >= 0; i-- {
		d.onStop[i]()
	}
	d.onStop = nil
}

func (d *daemon) logTail() string {
	b, _ := os.ReadFile(d.logf)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// launch starts cmd with its output going to d.logf (appended).
func (d *daemon) launch(cmd *exec.Cmd) error {
	lf, err := os.OpenFile(d.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	cmd.Stdout, cmd.Stderr = lf, lf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM // dies with the harness, whatever happens to it
	if err := cmd.Start(); err != nil {
		return err
	}
	d.cmd = cmd
	return nil
}

// waitFor polls ok until it holds, the process dies, or 60 s pass.
func (d *daemon) waitFor(what string, ok func() bool) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if ok() {
			return nil
		}
		if d.cmd.ProcessState != nil || syscall.Kill(d.pid(), 0) != nil || zombie(d.pid()) {
			return fmt.Errorf("%s exited before %s; log:\n%s", d.key, what, d.logTail())
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("%s: no %s after 60 s; log:\n%s", d.key, what, d.logTail())
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z'
}

// varlinkUp reports whether the socket answers a Varlink call.
func varlinkUp(sock string) bool {
	_, err := callOnce(sock, request("org.varlink.service.GetInfo", "{}", false))
	return err == nil
}

// tmpfsDir makes a fresh directory under /tmp with a tmpfs mounted on it (state
// files live on tmpfs /run on every real host); undo unmounts and removes it.
func tmpfsDir(prefix string) (dir string, undo func(), err error) {
	dir, err = os.MkdirTemp("/tmp", prefix)
	if err != nil {
		return "", nil, err
	}
	os.Chmod(dir, 0o755)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=0755,size=512m"); err != nil {
		os.Remove(dir)
		return "", nil, fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return dir, func() {
		syscall.Unmount(dir, syscall.MNT_DETACH)
		os.Remove(dir)
	}, nil
}

// startDaemon starts the daemon a -daemons key names (parseFlags admits only
// these three).
func startDaemon(cfg config, key, scratch string) (*daemon, error) {
	switch key {
	case "252":
		return new252(scratch)
	case "257":
		return new257(cfg.trixieRoot)
	case "ours":
		return newOurs(cfg.ours, cfg.oursBus)
	}
	return nil, fmt.Errorf("unknown daemon %q", key)
}

// newOurs prepares bin/machined on a tmpfs runtime directory. busMode "none"
// runs it Varlink-only; "private" gives it a bus of its own; anything else is a
// bus address passed to --bus.
func newOurs(bin, busMode string) (*daemon, error) {
	d := &daemon{key: "ours", exitNote: "never"}
	atExit(d.shutdown)
	d.version = firstLine(bin, "--version")
	if d.version == "" {
		return nil, fmt.Errorf("%s --version failed: build it first (make build)", bin)
	}
	d.label = d.version + " (" + bin + ")"
	dir, undo, err := tmpfsDir("bench-compare-ours-")
	if err != nil {
		return nil, err
	}
	d.onStop = append(d.onStop, undo)
	d.logf = filepath.Join(dir, "daemon.log")
	d.machineSock = filepath.Join(dir, "systemd", "machine", "io.systemd.Machine")
	d.userdbSock = filepath.Join(dir, "systemd", "userdb", "io.systemd.Machine")
	busArg := "none"
	switch busMode {
	case "", "none":
		d.noBus = "run without D-Bus (-ours-bus none)"
	case "private":
		b, err := startBus(filepath.Join(dir, "bus.sock"), dir)
		if err != nil {
			d.shutdown()
			return nil, err
		}
		d.bus = b
		d.onStop = append(d.onStop, b.stop)
		busArg = b.address()
	default:
		busArg = busMode
		d.busAddr = dbusAddr(busMode)
	}
	d.start = func() error {
		cmd := exec.Command(bin, append([]string{"--runtime-dir", dir, "--bus", busArg, "--log-level", "info"}, oursImageArgs()...)...)
		cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
		if err := d.launch(cmd); err != nil {
			return err
		}
		return d.waitFor("Varlink socket", func() bool { return varlinkUp(d.machineSock) })
	}
	return d.begin()
}

func dbusAddr(mode string) string {
	if mode == "system" || mode == "auto" {
		return "unix:path=/run/dbus/system_bus_socket"
	}
	return mode
}

// new257 prepares machined 257 from the trixie tree. It runs chrooted into the
// tree, in a mount namespace of its own where /proc, /sys, /dev and a private /run
// are mounted (nothing is mounted in the host's namespace, so nothing can leak
// into the shared tree). That /run is a tmpfs directory on the host, so its
// sockets are reachable from here: <run>/systemd/machine/io.systemd.Machine and
// <run>/systemd/userdb/io.systemd.Machine; <run>/dbus/system_bus_socket is its
// system bus, run by the host's dbus-daemon like the other daemons' buses.
func new257(root string) (*daemon, error) {
	d := &daemon{key: "257", exitNote: "never (no systemd)"}
	atExit(d.shutdown)
	if err := peer.Installed257(root); err != nil {
		return nil, err
	}
	d.version = "systemd-machined " + dpkgVersion(filepath.Join(root, "var/lib/dpkg"), "systemd-container")
	d.label = d.version + " (Debian 13 tree " + root + ")"
	dir, undo, err := tmpfsDir("bench-compare-257-")
	if err != nil {
		return nil, err
	}
	d.onStop = append(d.onStop, undo)
	run := peer.Run257(dir)
	if err := run.Prepare(); err != nil {
		d.shutdown()
		return nil, err
	}
	d.logf = filepath.Join(dir, "daemon.log")
	d.machineSock = run.MachineSocket()
	d.userdbSock = run.UserdbSocket()
	b, err := startBus(run.BusSocket(), dir)
	if err != nil {
		d.shutdown()
		return nil, err
	}
	d.bus = b
	d.onStop = append(d.onStop, b.stop)
	d.start = func() error {
		var binds []peer.Bind
		if images != nil {
			os.MkdirAll(filepath.Join(dir, "machines"), 0o755)
			os.MkdirAll(filepath.Join(root, "var/lib/machines"), 0o700)
			binds = []peer.Bind{{Host: images.listDir, Tree: "/run/machines"}, {Host: images.pool, Tree: "/var/lib/machines"}}
		}
		cmd := peer.Command257With(root, run, binds, "SYSTEMD_LOG_LEVEL="+upstreamLogLevel, "SYSTEMD_LOG_TARGET=console")
		if err := d.launch(cmd); err != nil {
			return err
		}
		return d.waitFor("Varlink sockets", func() bool { return varlinkUp(d.machineSock) && socketAlive(d.userdbSock) })
	}
	return d.begin()
}

// begin starts the daemon and, when it has a bus, waits until it owns its
// name there; on failure everything started is undone.
func (d *daemon) begin() (*daemon, error) {
	if err := d.start(); err != nil {
		d.shutdown()
		return nil, err
	}
	if d.busAddress() != "" {
		if err := d.connectBus(); err != nil {
			d.shutdown()
			return nil, err
		}
	}
	return d, nil
}

// busAddress is the daemon's bus, "" when it runs without one.
func (d *daemon) busAddress() string {
	if d.bus != nil {
		return d.bus.address()
	}
	return d.busAddr
}

func (d *daemon) connectBus() error {
	c, err := dbusConnect(d.busAddress())
	if err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for !nameOwned(c) {
		if time.Now().After(deadline) {
			c.Close()
			return fmt.Errorf("%s: %s not owned on its bus; log:\n%s", d.key, m1Name, d.logTail())
		}
		time.Sleep(5 * time.Millisecond)
	}
	d.busConn = c
	return nil
}

// new252 prepares Debian 12's machined 252. It has no Varlink machine API and
// fixed paths. Its userdb socket is the stock /run/systemd/userdb/io.systemd.Machine,
// so the caller must hold the stock-paths lock and have checked that nobody else
// uses it. Its state directory /run/systemd/machines would be the host's (on this
// kind of host not even a tmpfs): it runs in a mount namespace of its own where a
// tmpfs directory of ours is bound there, as ours and 257 get tmpfs state
// directories too. Its bus is found through $DBUS_SYSTEM_BUS_ADDRESS (sd-bus
// honours it), so the stock /run/dbus/system_bus_socket is left alone.
func new252(scratch string) (*daemon, error) {
	d := &daemon{key: "252", exitNote: "never (no systemd)",
		noVarlink: "252 has no io.systemd.Machine Varlink interface (D-Bus only)"}
	atExit(d.shutdown)
	if _, err := os.Stat(machined252); err != nil {
		return nil, fmt.Errorf("machined 252 not installed (systemd-container; run make deps): %w", err)
	}
	d.version = "systemd-machined " + dpkgVersion("", "systemd-container")
	d.label = d.version + " (" + machined252 + ")"
	d.userdbSock = stockUserdbSock
	d.logf = filepath.Join(scratch, "machined-252.log")
	if _, err := os.Stat(stockStateDir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(stockStateDir, 0o755); err != nil {
			return nil, err
		}
		d.onStop = append(d.onStop, func() { os.Remove(stockStateDir) })
	}
	state, undo, err := tmpfsDir("bench-compare-252-")
	if err != nil {
		return nil, err
	}
	d.onStop = append(d.onStop, undo)
	b, err := startBus(filepath.Join(state, "bus.sock"), state)
	if err != nil {
		d.shutdown()
		return nil, err
	}
	d.bus = b
	os.Mkdir(filepath.Join(state, "machines"), 0o755)
	d.onStop = append(d.onStop, b.stop, func() {
		// machined 252 leaves its userdb socket behind.
		if !socketAlive(stockUserdbSock) {
			os.Remove(stockUserdbSock)
		}
	})
	d.start = func() error {
		binds, bindArgs := imageBinds252()
		script := `set -e
mount --bind "$1" ` + stockStateDir + `
` + binds + `exec ` + machined252
		cmd := exec.Command("/bin/sh", append([]string{"-c", script, "sh", filepath.Join(state, "machines")}, bindArgs...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS} // Go makes / rprivate first
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_LOG_LEVEL=" + upstreamLogLevel, "SYSTEMD_LOG_TARGET=console",
			"DBUS_SYSTEM_BUS_ADDRESS=" + b.address()}
		if err := d.launch(cmd); err != nil {
			return err
		}
		var c *dbus.Conn
		defer func() {
			if c != nil {
				c.Close()
			}
		}()
		return d.waitFor("bus name and userdb socket", func() bool {
			if c == nil {
				c, _ = dbusConnect(b.address())
				if c == nil {
					return false
				}
			}
			return nameOwned(c) && socketAlive(stockUserdbSock)
		})
	}
	return d.begin()
}

func dpkgVersion(admindir, pkg string) string {
	args := []string{"-W", "-f=${Version}", pkg}
	if admindir != "" {
		args = append([]string{"--admindir=" + admindir}, args...)
	}
	v := firstLine("dpkg-query", args...)
	if v == "" {
		return "(version unknown)"
	}
	return v
}

// The machine operations the workloads need, over whichever API the daemon has.

// register registers name with leader pid: Varlink when the daemon has it, else D-Bus.
func (d *daemon) registerOn(v *vconn, c *dbus.Conn, name string, pid int) error {
	if v != nil {
		_, err := v.call(registerReq(name, pid))
		return err
	}
	return dbusRegister(c, name, pid)
}

// registerAll registers names[i] with leaders[i] on 4 connections in parallel.
func (d *daemon) registerAll(names []string, ls []*leader) error {
	const workers = 4
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var v *vconn
			var c *dbus.Conn
			var err error
			if d.machineSock != "" {
				if v, err = vdial(d.machineSock); err != nil {
					errs[w] = err
					return
				}
				defer v.Close()
			} else {
				if c, err = dbusConnect(d.busAddress()); err != nil {
					errs[w] = err
					return
				}
				defer c.Close()
			}
			for i := w; i < len(names); i += workers {
				if err := d.registerOn(v, c, names[i], ls[i].pid); err != nil {
					errs[w] = fmt.Errorf("register %s (leader %d): %w", names[i], ls[i].pid, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// gone reports whether the machine is no longer registered.
func (d *daemon) gone(v *vconn, c *dbus.Conn, name string) (bool, error) {
	if v != nil {
		_, err := v.call(listNameReq(name))
		var ve *varlinkError
		if errors.As(err, &ve) && strings.HasPrefix(ve.name, "io.systemd.Machine.NoSuchMachine") {
			return true, nil
		}
		return false, err
	}
	return dbusMachineGone(c, name)
}

func (d *daemon) unregister(v *vconn, c *dbus.Conn, name string) error {
	if v != nil {
		_, err := v.call(unregisterReq(name))
		return err
	}
	return dbusUnregister(c, name)
}

// control opens the connection the machine operations go through: Varlink when
// the daemon has it, else a D-Bus connection. Close it with the returned func.
func (d *daemon) control() (*vconn, *dbus.Conn, func(), error) {
	if d.machineSock != "" {
		v, err := vdial(d.machineSock)
		if err != nil {
			return nil, nil, nil, err
		}
		return v, nil, func() { v.Close() }, nil
	}
	c, err := dbusConnect(d.busAddress())
	if err != nil {
		return nil, nil, nil, err
	}
	return nil, c, func() { c.Close() }, nil
}

// keepLogs is where daemon logs are copied to at shutdown (-logs); "" drops them.
var keepLogs string

// upstreamLogLevel is SYSTEMD_LOG_LEVEL for the upstream daemons (-upstream-log-level).
var upstreamLogLevel = "info"
