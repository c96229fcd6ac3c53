package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
)

// The copy workload: machinectl copy-to and copy-from of one tree of mixed
// file sizes into and out of a container, timed from the call to its reply.
// The container is a leader of the farm in the host's mount namespace, so
// both sides are on the same file system: the figures are the daemons' own
// cost (walking, opening, creating, moving bytes in the kernel), not a
// difference of disks.

const gCopy = "Copy (CopyToMachine / CopyFromMachine on D-Bus, 1 GiB tree of mixed sizes)"

const (
	rowCopyTo    = "copy-to, host → container"
	rowCopyFrom  = "copy-from, container → host"
	rowCopySmall = "copy-to of one 4 KiB file (latency)"
)

// smallCopies is how many one-file copies each round times: what a copy costs
// before any byte moves (upstream forks a child, ours starts a helper).
const smallCopies = 5

// copyRounds is the fewest rounds of the copy phase: one copy's time depends
// on the VM far more than on the daemon (see pageReportedKiB), a median of
// three let one unlucky round decide, and of five, two slow rounds of one
// daemon against none of the other's still moved it.
const copyRounds = 9

// copyTreeSpec is the tree: (files, size) per kind, spread over 64 directories.
var copyTreeSpec = []struct {
	files int
	size  int
}{
	{16, 32 << 20},   // 512 MiB of large files
	{256, 1 << 20},   // 256 MiB of medium ones
	{4096, 64 << 10}, // 256 MiB of small ones
}

// makeCopyTree writes the tree once per run under scratch.
func makeCopyTree(scratch string) (string, int64, error) {
	root := filepath.Join(scratch, "copy-src")
	var total int64
	buf := make([]byte, 32<<20)
	for i := range buf {
		buf[i] = byte(i*7 + i>>9)
	}
	n := 0
	for _, k := range copyTreeSpec {
		for range k.files {
			dir := filepath.Join(root, "d"+strconv.Itoa(n%64))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return "", 0, err
			}
			if err := os.WriteFile(filepath.Join(dir, "f"+strconv.Itoa(n)), buf[:k.size], 0o644); err != nil {
				return "", 0, err
			}
			total += int64(k.size)
			n++
		}
	}
	return root, total, nil
}

// copyPhase times copy-to and copy-from of the tree with every daemon running
// at once, each with a machine of its own, a round at a time, every daemon
// once per round in an order rotated from one round to the next. Run one
// daemon after the other, the second one copied right after the first one's
// gigabytes of deletes (ext4's inode allocator then passes over the freshly
// freed inodes) and in another load window: the order decided the verdict.
// Interleaved, each daemon pays for the others' deletes alike. Daemons without
// D-Bus are not measured: 252 has only D-Bus, and one transport keeps the
// comparison even.
func (b *bench) copyPhase(scratch string) {
	// Mounted before the daemons start, so that upstream's mount namespaces,
	// copied from ours, see it too.
	dir, unmount, err := copyFS(scratch, len(b.cfg.daemons))
	if err != nil {
		b.logf("copies: %v", err)
		for _, row := range []string{rowCopyTo, rowCopyFrom} {
			for _, key := range b.cfg.daemons {
				b.rep.set(gCopy, row, "MiB/s", true, key, cell{Text: "failed", Note: err.Error()})
			}
		}
		for _, key := range b.cfg.daemons {
			b.rep.set(gCopy, rowCopySmall, "ms", false, key, cell{Text: "failed", Note: err.Error()})
		}
		return
	}
	defer unmount()
	src, total, err := b.copySource(dir)
	var ts []*copyTarget
	for _, key := range b.cfg.daemons {
		d, derr := startDaemon(b.cfg, key, scratch)
		if derr != nil {
			b.logf("%s: cannot start: %v", key, derr)
			for _, row := range []string{rowCopyTo, rowCopyFrom} {
				b.rep.set(gCopy, row, "MiB/s", true, key, cell{Text: "n/a", Note: "could not start: " + firstLineOf(derr.Error())})
			}
			b.rep.set(gCopy, rowCopySmall, "ms", false, key, cell{Text: "n/a", Note: "could not start: " + firstLineOf(derr.Error())})
			continue
		}
		defer d.shutdown()
		t := &copyTarget{d: d, err: err}
		if d.busAddress() == "" {
			b.set(gCopy, rowCopyTo, "MiB/s", true, d, na(d.noBus))
			b.set(gCopy, rowCopyFrom, "MiB/s", true, d, na(d.noBus))
			b.set(gCopy, rowCopySmall, "ms", false, d, na(d.noBus))
			continue
		}
		if t.err == nil {
			t.err = b.registerCopyMachine(t, dir)
		}
		defer t.close(b)
		ts = append(ts, t)
	}
	for i := range max(copyRounds, b.cfg.reps) {
		for j := range ts {
			if interrupted.Load() {
				return
			}
			if t := ts[(i+j)%len(ts)]; t.err == nil {
				t.err = t.round(src, total)
			}
		}
	}
	for _, t := range ts {
		if t.err != nil {
			b.set(gCopy, rowCopyTo, "MiB/s", true, t.d, failed(t.err))
			b.set(gCopy, rowCopyFrom, "MiB/s", true, t.d, failed(t.err))
			b.set(gCopy, rowCopySmall, "ms", false, t.d, failed(t.err))
			continue
		}
		b.set(gCopy, rowCopyTo, "MiB/s", true, t.d, figure(median(t.to), t.to))
		b.set(gCopy, rowCopyFrom, "MiB/s", true, t.d, figure(median(t.from), t.from))
		b.set(gCopy, rowCopySmall, "ms", false, t.d, figure(median(t.small), t.small))
	}
}

// copyFS is where the copies are made: a tmpfs of its own under scratch. On
// the scratch disk (ext4 without a journal here) a copy made within a minute
// of deleting the previous round's copy spent most of its time in ext4's
// inode allocator, which passes over every inode freed in the last 60 s
// before it reuses one, reading its inode table block each time: the figure
// measured the file system's memory of the last round, and whichever daemon's
// directories landed among the freed inodes lost. On a tmpfs the figures are
// the daemons' own work: walking, opening, creating, moving bytes in the kernel.
func copyFS(scratch string, daemons int) (string, func(), error) {
	dir := filepath.Join(scratch, "copy")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	// The tree, each daemon's two copies of it, and room to spare.
	size := fmt.Sprintf("size=%dg,mode=0755", 2+2*daemons)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, size); err != nil {
		return "", nil, fmt.Errorf("mounting a tmpfs for the copies: %w", err)
	}
	return dir, func() {
		os.RemoveAll(filepath.Join(dir, "copy-src"))
		syscall.Unmount(dir, syscall.MNT_DETACH)
	}, nil
}

func (b *bench) copySource(scratch string) (string, int64, error) {
	if b.copySrc == "" {
		t := time.Now()
		src, total, err := makeCopyTree(scratch)
		if err != nil {
			return "", 0, fmt.Errorf("making the tree: %w", err)
		}
		b.copySrc, b.copyBytes = src, total
		b.logf("copy tree of %d MiB written in %s", total>>20, time.Since(t).Round(time.Millisecond))
	}
	return b.copySrc, b.copyBytes, nil
}

// copyTarget is one daemon's machine of the copy rows and its figures.
type copyTarget struct {
	d        *daemon
	c        *dbus.Conn
	l        *leader
	name     string
	in, out  string
	to, from []float64
	small    []float64 // ms per one-file copy
	err      error
}

// registerCopyMachine connects to the daemon's bus and registers a machine whose
// leader is a process of the farm's.
func (b *bench) registerCopyMachine(t *copyTarget, scratch string) error {
	c, err := dbusConnect(t.d.busAddress())
	if err != nil {
		return err
	}
	t.c = c
	l, err := b.farm.spawn("copy-"+t.d.key, 0)
	if err != nil {
		return err
	}
	t.l = l
	t.name = machinePrefix + "copy"
	if err := dbusRegister(c, t.name, l.pid); err != nil {
		return err
	}
	t.in = filepath.Join(scratch, "copy-in-"+t.d.key)
	t.out = filepath.Join(scratch, "copy-out-"+t.d.key)
	return nil
}

// round copies the tree into the machine and back out, after removing the
// previous round's copies and writing out dirty pages.
func (t *copyTarget) round(src string, total int64) error {
	os.RemoveAll(t.in)
	os.RemoveAll(t.out)
	syncFS()
	settlePageReporting()
	warmFreeMemory(total)
	el, err := timeCall(t.c, "CopyToMachine", t.name, src, t.in)
	if err != nil {
		return fmt.Errorf("CopyToMachine: %w", err)
	}
	t.to = append(t.to, float64(total>>20)/el.Seconds())
	if err := checkCopied(t.in, total); err != nil {
		return fmt.Errorf("CopyToMachine: %w", err)
	}
	syncFS()
	settlePageReporting()
	warmFreeMemory(total)
	el, err = timeCall(t.c, "CopyFromMachine", t.name, t.in, t.out)
	if err != nil {
		return fmt.Errorf("CopyFromMachine: %w", err)
	}
	t.from = append(t.from, float64(total>>20)/el.Seconds())
	if err := checkCopied(t.out, total); err != nil {
		return fmt.Errorf("CopyFromMachine: %w", err)
	}
	return t.smallRound(src)
}

// smallRound times copies of one small file into the machine, each to a name
// of its own.
func (t *copyTarget) smallRound(src string) error {
	file := filepath.Join(filepath.Dir(src), "copy-small")
	if _, err := os.Stat(file); err != nil {
		if err := os.WriteFile(file, make([]byte, 4096), 0o644); err != nil {
			return err
		}
	}
	for i := range smallCopies {
		dst := filepath.Join(t.in, "small-"+strconv.Itoa(i))
		el, err := timeCall(t.c, "CopyToMachine", t.name, file, dst)
		if err != nil {
			return fmt.Errorf("CopyToMachine of one file: %w", err)
		}
		if fi, err := os.Stat(dst); err != nil || fi.Size() != 4096 {
			return fmt.Errorf("CopyToMachine of one file: %v", err)
		}
		t.small = append(t.small, float64(el.Microseconds())/1000)
	}
	return nil
}

// checkCopied makes sure a copy holds the whole tree: a daemon that copied
// less would otherwise look fast. The walk is not timed.
func checkCopied(dir string, total int64) error {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		fi, err := e.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		return err
	}
	if n != total {
		return fmt.Errorf("the copy holds %d of the tree's %d bytes", n, total)
	}
	return nil
}

func (t *copyTarget) close(b *bench) {
	if t.c != nil {
		if t.name != "" {
			dbusUnregister(t.c, t.name)
		}
		t.c.Close()
	}
	if t.l != nil {
		b.farm.kill(t.l)
	}
	os.RemoveAll(t.in)
	os.RemoveAll(t.out)
}

func timeCall(c *dbus.Conn, method string, args ...any) (time.Duration, error) {
	t := time.Now()
	call := m1(c).Call(m1Mgr+"."+method, 0, args...)
	el := time.Since(t)
	var de dbus.Error
	if errors.As(call.Err, &de) && len(de.Body) > 0 {
		return 0, fmt.Errorf("%s: %v", de.Name, de.Body[0])
	}
	return el, call.Err
}

// pageReportedKiB is how much freed memory the guest kernel has handed back to
// the VM's host so far (virtio-balloon free page reporting), or -1 where the
// kernel does not say. Page cache freed by deleting one round's copies goes
// back to the host, and the next copy faults it in again: on this kind of VM
// the first copy after a delete is markedly slower whoever makes it, which is
// why the phase interleaves daemons and reports how much was handed back.
func pageReportedKiB() int64 {
	b, err := os.ReadFile("/sys/module/page_reporting/parameters/reported_kib")
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// settlePageReporting waits until the kernel has stopped handing freed memory
// back to the host (at most 15 s), so that every copy starts from the same
// state: with the host's pages of the previous round's deletes already gone.
// Timed while the kernel was still reporting, a copy's speed depended on how
// many of the pages it was given had been handed back yet, which turned on
// the timing of the round rather than on the daemon.
func settlePageReporting() {
	last := pageReportedKiB()
	if last < 0 {
		return
	}
	still := 0
	for deadline := time.Now().Add(15 * time.Second); still < 3 && time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		n := pageReportedKiB()
		if n == last {
			still++
		} else {
			still, last = 0, n
		}
	}
}

// warmFreeMemory touches and frees half again as much memory as a copy will
// take, right before the copy. Once the kernel has handed free memory back to
// the VM's host, the next use of a page faults it in from the host; which of
// its pages a copy gets decided whether it ran at full speed or at a seventh
// of it, for any daemon. Pages just touched and freed are the ones the kernel
// hands out first, and it reports free pages to the host only after they
// have stayed free a while: the copy that follows gets pages the host backs.
func warmFreeMemory(bytes int64) {
	n := int(bytes + bytes/2)
	m, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_POPULATE)
	if err != nil {
		return
	}
	syscall.Munmap(m)
}

// syncFS writes dirty pages out between rounds, so no round pays for the
// previous one's writeback.
func syncFS() { syscall.Sync() }
