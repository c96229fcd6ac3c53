package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Leaders are processes standing in for containers' PID 1. Each sits in a cgroup of
// its own, <cgroup2>/machine.slice/bench-<tag>.scope, because upstream machined
// derives a machine's unit from its leader's cgroup and refuses a leader in the
// root cgroup (252: ENXIO over D-Bus; 257: errno 6 over Varlink) or two machines in
// one unit (EEXIST). Leaders of the userdb workloads also run in a user namespace of
// their own with a shifted uid/gid map.
//
// They are forked, without exec, by csrc/leaderfarm.c (a few syscalls each instead of
// an exec of sleep(1): 10,000 of them are needed); the farm reaps them, and kills
// them when its stdin closes, that is when the harness exits. Each leader also has
// PR_SET_PDEATHSIG(SIGKILL). sweepStaleScopes clears bench-*.scope cgroups left by an
// interrupted run with cgroup.kill.

const (
	sliceName   = "machine.slice"
	scopePrefix = "bench-"
)

// uidRange is the size of each user namespace's uid/gid map: all 16-bit ids, as
// systemd-nspawn --private-users=pick gives a container.
const uidRange = 65536

// uidBase is the first host uid/gid of leader i's map, i counted from 0:
// uidBase(i) = 65536*(10+i). 10,000 machines use host ids 655,360 … 656,015,359,
// far below 2^32-1 (4,294,967,295, the invalid uid).
func uidBase(i int) uint32 { return uint32(uidRange * (10 + i)) }

// maxUserNSLeaders is how many leaders the scheme above can map: machine i's
// range ends at 65536*(11+i)-1, which must stay below 2^32-1, so 11+i < 65536.
const maxUserNSLeaders = 1<<16 - 11

type leader struct {
	pid   int
	tag   string
	scope string // cgroup directory
	shift uint32 // uid/gid shift; 0 without a user namespace
}

type farm struct {
	slice     string // <cgroup2>/machine.slice
	madeSlice bool

	mu    sync.Mutex // one command/reply at a time
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	alive map[int]*leader
}

func newFarm(bin, cgRoot string) (*farm, error) {
	f := &farm{slice: filepath.Join(cgRoot, sliceName), alive: map[int]*leader{}}
	if _, err := os.Stat(f.slice); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(f.slice, 0o755); err != nil {
			return nil, err
		}
		f.madeSlice = true
	}
	f.cmd = exec.Command(bin)
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
	f.cmd.Stderr = os.Stderr
	var err error
	if f.in, err = f.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	f.out = bufio.NewReader(out)
	if err := f.cmd.Start(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *farm) scopeDir(tag string) string {
	return filepath.Join(f.slice, scopePrefix+tag+".scope")
}

func (f *farm) reply() (string, error) {
	line, err := f.out.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("leader farm: %w", err)
	}
	line = strings.TrimSpace(line)
	if e, ok := strings.CutPrefix(line, "e "); ok {
		n, _ := strconv.Atoi(e)
		return "", syscall.Errno(n)
	}
	return line, nil
}

// spawnMany starts n leaders tagged prefix0 … prefix<n-1>; shiftOf(i) gives each
// one's uid/gid shift (nil or 0: no user namespace). Commands are pipelined.
func (f *farm) spawnMany(prefix string, n int, shiftOf func(i int) uint32) ([]*leader, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*leader, 0, n)
	const batch = 256
	for start := 0; start < n; start += batch {
		end := min(start+batch, n)
		var b strings.Builder
		pending := make([]*leader, 0, end-start)
		for i := start; i < end; i++ {
			l := &leader{tag: prefix + strconv.Itoa(i)}
			l.scope = f.scopeDir(l.tag)
			if shiftOf != nil {
				l.shift = shiftOf(i)
			}
			fmt.Fprintf(&b, "s %s %d\n", l.scope, l.shift)
			pending = append(pending, l)
		}
		if _, err := io.WriteString(f.in, b.String()); err != nil {
			return out, fmt.Errorf("leader farm: %w", err)
		}
		var firstErr error
		for _, l := range pending {
			r, err := f.reply()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("start leader %s: %w", l.tag, err)
				}
				continue
			}
			l.pid, _ = strconv.Atoi(r)
			f.alive[l.pid] = l
			out = append(out, l)
		}
		if firstErr != nil {
			return out, firstErr
		}
	}
	return out, nil
}

// spawn starts one leader in machine.slice/bench-<tag>.scope.
func (f *farm) spawn(tag string, shift uint32) (*leader, error) {
	ls, err := f.spawnMany(tag, 1, func(int) uint32 { return shift })
	if err != nil {
		return nil, err
	}
	return ls[0], nil
}

// kill ends one leader with SIGKILL; the farm reaps it and removes its cgroup.
func (f *farm) kill(l *leader) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := fmt.Fprintf(f.in, "k %d %s\n", l.pid, l.scope); err != nil {
		return err
	}
	delete(f.alive, l.pid)
	_, err := f.reply()
	return err
}

// close ends every leader (the farm kills and reaps them on end of input and
// removes their cgroups), then removes machine.slice if the farm created it and
// it is empty.
func (f *farm) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cmd == nil {
		return
	}
	f.in.Close()
	done := make(chan struct{})
	go func() { f.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		f.cmd.Process.Kill()
		<-done
	}
	f.cmd = nil
	for _, l := range f.alive {
		rmdirRetry(l.scope)
	}
	f.alive = nil
	if f.madeSlice {
		os.Remove(f.slice)
	}
}

// rmdirRetry removes an (empty) cgroup; a killed process may take a moment to
// leave it. Only empty cgroups can be removed: rmdir fails with EBUSY otherwise.
func rmdirRetry(dir string) {
	for range 50 {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sweepStaleScopes kills what is left in machine.slice/bench-*.scope cgroups from
// an earlier, interrupted run (only this harness creates them) with cgroup.kill
// and removes them. It returns how many it found.
func sweepStaleScopes(cgRoot string) int {
	slice := filepath.Join(cgRoot, sliceName)
	ents, err := os.ReadDir(slice)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, scopePrefix) || !strings.HasSuffix(name, ".scope") {
			continue
		}
		dir := filepath.Join(slice, name)
		os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
		rmdirRetry(dir)
		n++
	}
	return n
}
