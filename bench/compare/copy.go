package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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
	rowCopyTo   = "copy-to, host → container"
	rowCopyFrom = "copy-from, container → host"
)

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

// copyThroughput times copy-to and copy-from of the tree, b.cfg.reps times
// each, and reports MiB/s. Daemons without D-Bus are not measured: 252 has
// only D-Bus, and one transport keeps the comparison even.
func (b *bench) copyThroughput(d *daemon) {
	scratch := b.scratch
	if d.busAddress() == "" {
		b.set(gCopy, rowCopyTo, "MiB/s", true, d, na(d.noBus))
		b.set(gCopy, rowCopyFrom, "MiB/s", true, d, na(d.noBus))
		return
	}
	src, total, err := b.copySource(scratch)
	if err == nil {
		err = b.copyRounds(d, scratch, src, total)
	}
	if err != nil {
		b.set(gCopy, rowCopyTo, "MiB/s", true, d, failed(err))
		b.set(gCopy, rowCopyFrom, "MiB/s", true, d, failed(err))
	}
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

func (b *bench) copyRounds(d *daemon, scratch, src string, total int64) error {
	c, err := dbusConnect(d.busAddress())
	if err != nil {
		return err
	}
	defer c.Close()
	l, err := b.farm.spawn("copy-"+d.key, 0)
	if err != nil {
		return err
	}
	defer b.farm.kill(l)
	name := machinePrefix + "copy"
	if err := dbusRegister(c, name, l.pid); err != nil {
		return err
	}
	defer dbusUnregister(c, name)
	in := filepath.Join(scratch, "copy-in-"+d.key)
	out := filepath.Join(scratch, "copy-out-"+d.key)
	var to, from []float64
	for range max(1, min(b.cfg.reps, 3)) {
		os.RemoveAll(in)
		os.RemoveAll(out)
		syncFS()
		el, err := timeCall(c, "CopyToMachine", name, src, in)
		if err != nil {
			return fmt.Errorf("CopyToMachine: %w", err)
		}
		to = append(to, float64(total>>20)/el.Seconds())
		syncFS()
		el, err = timeCall(c, "CopyFromMachine", name, in, out)
		if err != nil {
			return fmt.Errorf("CopyFromMachine: %w", err)
		}
		from = append(from, float64(total>>20)/el.Seconds())
	}
	os.RemoveAll(in)
	os.RemoveAll(out)
	b.set(gCopy, rowCopyTo, "MiB/s", true, d, figure(median(to), to))
	b.set(gCopy, rowCopyFrom, "MiB/s", true, d, figure(median(from), from))
	return nil
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

// syncFS writes dirty pages out between rounds, so no round pays for the
// previous one's writeback.
func syncFS() { syscall.Sync() }
