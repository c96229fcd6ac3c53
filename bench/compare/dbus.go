package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
)

// Every daemon under test that speaks D-Bus gets a bus of its own, run by the
// host's dbus-daemon with the same minimal configuration: a system bus, root
// only, no service activation (so that machined's calls to the absent
// org.freedesktop.systemd1 fail at once instead of spawning the activation
// helper), no pidfile. Only the socket path differs: the stock
// /run/dbus/system_bus_socket for machined 252, which has no other way to find
// its bus, and private paths for 257 (seen from its chroot as
// /run/dbus/system_bus_socket) and for ours.

const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<!-- written by bench/compare; deleted when it exits -->
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="root"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`

type busDaemon struct {
	socket string
	conf   string
	cmd    *exec.Cmd
}

func (b *busDaemon) address() string { return "unix:path=" + b.socket }

// busPID is the PID of the daemon's own bus, 0 when it has none of its own.
func (d *daemon) busPID() int {
	if d.bus == nil || d.bus.cmd == nil || d.bus.cmd.Process == nil {
		return 0
	}
	return d.bus.cmd.Process.Pid
}

// startBus runs dbus-daemon listening on socket; scratch is where its config and
// log go. It refuses a socket path somebody answers on.
func startBus(socket, scratch string) (*busDaemon, error) {
	if socketAlive(socket) {
		return nil, fmt.Errorf("%s: a bus is already listening there", socket)
	}
	if st, err := os.Lstat(socket); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", socket)
		}
		os.Remove(socket) // stale: nobody listens
	}
	if err := os.MkdirAll(filepath.Dir(socket), 0o755); err != nil {
		return nil, err
	}
	b := &busDaemon{socket: socket, conf: filepath.Join(scratch, "bus-"+strconv.Itoa(int(time.Now().UnixNano()))+".conf")}
	if err := os.WriteFile(b.conf, []byte(fmt.Sprintf(busConfig, socket)), 0o644); err != nil {
		return nil, err
	}
	log, err := os.Create(b.conf + ".log")
	if err != nil {
		return nil, err
	}
	defer log.Close()
	b.cmd = exec.Command("dbus-daemon", "--config-file="+b.conf, "--nofork", "--nopidfile", "--nosyslog")
	b.cmd.Stdout, b.cmd.Stderr = log, log
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
	if err := b.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := dbusConnect(b.address()); err == nil {
			c.Close()
			return b, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.stop()
	return nil, fmt.Errorf("dbus-daemon on %s did not come up (log %s)", socket, b.conf+".log")
}

// stop ends the bus by its PID and removes the socket file it leaves behind.
func (b *busDaemon) stop() {
	if b == nil || b.cmd == nil {
		return
	}
	stopProcess(b.cmd, 5*time.Second)
	b.cmd = nil
	if !socketAlive(b.socket) {
		os.Remove(b.socket)
	}
	os.Remove(b.conf)
	os.Remove(b.conf + ".log")
}

// dbusConnect connects and says Hello. (Not dbus.WithContext: its context
// bounds the connection's whole life, not just the handshake.)
func dbusConnect(addr string) (*dbus.Conn, error) {
	return dbus.Connect(addr)
}

// socketAlive reports whether something accepts connections on a unix socket.
func socketAlive(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

const (
	m1Name = "org.freedesktop.machine1"
	m1Path = dbus.ObjectPath("/org/freedesktop/machine1")
	m1Mgr  = "org.freedesktop.machine1.Manager"
)

// nameOwned reports whether org.freedesktop.machine1 has an owner on the bus.
func nameOwned(c *dbus.Conn) bool {
	var has bool
	err := c.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, m1Name).Store(&has)
	return err == nil && has
}

func m1(c *dbus.Conn) dbus.BusObject { return c.Object(m1Name, m1Path) }

func dbusRegister(c *dbus.Conn, name string, pid int) error {
	return m1(c).Call(m1Mgr+".RegisterMachine", 0, name, []byte{}, "bench", "container", uint32(pid), "").Err
}

func dbusUnregister(c *dbus.Conn, name string) error {
	return m1(c).Call(m1Mgr+".UnregisterMachine", 0, name).Err
}

// dbusListCount calls ListMachines and returns how many machines it listed.
func dbusListCount(c *dbus.Conn) (int, error) {
	var out [][]any
	if err := m1(c).Call(m1Mgr+".ListMachines", 0).Store(&out); err != nil {
		return 0, err
	}
	return len(out), nil
}

// dbusMachineGone reports whether GetMachine says NoSuchMachine.
func dbusMachineGone(c *dbus.Conn, name string) (bool, error) {
	err := m1(c).Call(m1Mgr+".GetMachine", 0, name).Err
	if err == nil {
		return false, nil
	}
	var de dbus.Error
	if errors.As(err, &de) && de.Name == "org.freedesktop.machine1.NoSuchMachine" {
		return true, nil
	}
	return false, err
}

// stopProcess sends SIGTERM to a process started by this harness, waits up to
// grace, then SIGKILLs it. Only the recorded PID is signalled.
func stopProcess(cmd *exec.Cmd, grace time.Duration) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
	}
}

// firstLine returns the first line of a command's output, "" on failure.
func firstLine(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	if sc.Scan() {
		return strings.TrimSpace(sc.Text())
	}
	return ""
}
