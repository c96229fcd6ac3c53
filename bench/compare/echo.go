package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The bare C echo server (csrc/echoserver.c) is the floor of the userdb rows:
// the lean client's round trip with a server that does nothing at all, on this
// machine, in the same minutes. A daemon's persistent-connection lookups are
// compared with it by alternating repetitions of the two.

const (
	rowEcho      = "bare C echo server, same client and requests, persistent connection (the floor)"
	rowEchoShare = "by uid, persistent connection, 2 machines: share of the echo server's rate (interleaved)"
)

// echoServer is the running helper.
type echoServer struct {
	sock string
	cmd  *exec.Cmd
}

func startEcho(bin, dir string) (*echoServer, error) {
	sock := filepath.Join(dir, "echo.sock")
	cmd := exec.Command(bin, sock)
	// A session of its own, as every daemon gets (launch): with the kernel's
	// autogroups, a new session is a scheduling group of its own, and a
	// ping-pong across two groups costs more per switch than one inside the
	// harness's group. A floor measured in the client's group would be
	// higher than any daemon could reach under the same placement.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("echoserver did not start: %q %v", line, err)
	}
	return &echoServer{sock: sock, cmd: cmd}, nil
}

// echoCaller sends the requests to the echo server in turn, one per call.
func echoCaller(e *vconn, reqs [][]byte) func() error {
	k := 0
	return func() error {
		_, err := e.call(reqs[k%len(reqs)])
		k++
		return err
	}
}

func (e *echoServer) close() {
	e.cmd.Process.Kill()
	e.cmd.Wait()
}

// On this VM a ping-pong's rate changes several-fold with placement: client
// and server on one vCPU hand over in a context switch; on two, every call
// wakes a halted vCPU. The scheduler picks per process and changes its mind
// within seconds, so the unpinned share compares the daemon in one placement
// with the echo server in another as often as not (one run's shares ranged
// from 29% to 375%). The pinned rows fix the placement for both, as an
// administrator's CPUAffinity would: what is left is each server's own cost.

func rowEchoSharePinned(pl placement) string {
	return "by uid, persistent connection, 2 machines: share of the echo server's rate" + pl.suffix()
}

// A placement pins the harness to CPU 0 and each server, in its own windows,
// to serverCPU: on one vCPU every call is a context switch, on two every
// call wakes the other vCPU. Free leaves it to the scheduler, as a host does.
type placement struct {
	name      string // appended to the rows; "" for free
	serverCPU int    // -1: free
}

// placements are those the pair phase measures; the pinned ones are also
// those of the echo share.
var (
	placements = []placement{
		{"", -1},
		{"client and server on one vCPU", 0},
		{"client and server on two vCPUs", 1},
	}
	pinnedPlacements = placements[1:]
)

func (pl placement) suffix() string {
	if pl.name == "" {
		return ""
	}
	return ", " + pl.name
}

// pinnedShares measures lookup against the echo server with the harness on
// CPU 0 and both servers on serverCPU (pinTo), in alternating windows, for
// each placement.
func (b *bench) pinnedShares(d *daemon, reqs [][]byte, lookup func() error) {
	if runtime.NumCPU() < 2 {
		for _, pl := range pinnedPlacements {
			b.set(gUserdb, rowEchoSharePinned(pl), "%", true, d, na("needs two CPUs"))
		}
		return
	}
	e, err := vdial(b.echo.sock)
	if err != nil {
		for _, pl := range pinnedPlacements {
			b.set(gUserdb, rowEchoSharePinned(pl), "%", true, d, failed(err))
		}
		return
	}
	defer e.Close()
	echoOnce := echoCaller(e, reqs)
	for _, pl := range pinnedPlacements {
		share, err := b.pinnedShare(pl.serverCPU, []int{d.pid(), b.echo.cmd.Process.Pid}, lookup, echoOnce)
		if err != nil {
			b.set(gUserdb, rowEchoSharePinned(pl), "%", true, d, failed(err))
			continue
		}
		b.set(gUserdb, rowEchoSharePinned(pl), "%", true, d, figure(median(share), share))
	}
}

// pinnedShare places the harness and the servers (pinTo), then alternates
// windows of lookup and echo.
func (b *bench) pinnedShare(cpu int, servers []int, lookup, echo func() error) ([]float64, error) {
	restore, err := pinTo(cpu, servers...)
	defer restore()
	if err != nil {
		return nil, err
	}
	var share []float64
	for range b.cfg.reps {
		r, err := rate(b.cfg.dur, 3, lookup)
		if err != nil {
			return nil, err
		}
		f, err := rate(b.cfg.dur, 3, echo)
		if err != nil {
			return nil, err
		}
		share = append(share, 100*r/f)
	}
	return share, nil
}

// pinTo pins the whole harness to CPU 0 and every thread of the servers to
// cpu, and returns what puts every affinity back (the harness's threads
// started meanwhile included). The whole harness, not one locked thread: Go
// hands a goroutine woken by the netpoller to its locked thread with one more
// wake-up, on whichever CPU the netpoller ran.
func pinTo(cpu int, servers ...int) (restore func(), err error) {
	var all, zero unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		return func() {}, err
	}
	var unpins []func()
	restore = func() {
		for _, u := range unpins {
			u()
		}
		setAffinityAll(os.Getpid(), &all)
	}
	for _, pid := range servers {
		unpin, err := pinProcess(pid, cpu)
		unpins = append(unpins, unpin)
		if err != nil {
			return restore, err
		}
	}
	zero.Set(0)
	return restore, setAffinityAll(os.Getpid(), &zero)
}

// pinProcess sets the affinity of every thread of pid to cpu and returns
// what puts each thread's old affinity back.
func pinProcess(pid, cpu int) (restore func(), err error) {
	tids, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil || len(tids) == 0 {
		return func() {}, fmt.Errorf("threads of %d: %v", pid, err)
	}
	type saved struct {
		tid int
		set unix.CPUSet
	}
	var old []saved
	restore = func() {
		for _, s := range old {
			unix.SchedSetaffinity(s.tid, &s.set)
		}
	}
	var one unix.CPUSet
	one.Set(cpu)
	for _, t := range tids {
		tid, _ := strconv.Atoi(filepath.Base(t))
		var s saved
		s.tid = tid
		if err := unix.SchedGetaffinity(tid, &s.set); err != nil {
			continue // the thread is gone
		}
		if err := unix.SchedSetaffinity(tid, &one); err != nil {
			return restore, fmt.Errorf("pinning thread %d of %d: %w", tid, pid, err)
		}
		old = append(old, s)
	}
	return restore, nil
}

// setAffinityAll gives every thread of pid the same affinity.
func setAffinityAll(pid int, set *unix.CPUSet) error {
	tids, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil {
		return err
	}
	for _, t := range tids {
		tid, _ := strconv.Atoi(filepath.Base(t))
		if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
			return fmt.Errorf("thread %d of %d: %w", tid, pid, err)
		}
	}
	return nil
}
