package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The image workloads: every daemon sees the same images, the listing set as
// its /run/machines and a pool as its /var/lib/machines (upstream's fixed
// paths: bind mounts in the upstream daemons' own mount namespaces; for ours
// the flags --image-search-path and --image-pool). The pool is an ext4
// directory first, then a btrfs file system on a loop device, each holding a
// clone source: a plain directory on ext4, a subvolume on btrfs.

const (
	gImages       = "Images"
	cloneSource   = "bench-big"
	cloneTarget   = "bench-clone"
	listImagePfx  = "bench-img-"
	stockRunImgs  = "/run/machines"
	stockPoolPath = "/var/lib/machines"
)

func rowImgDBusList(n int) string { return fmt.Sprintf("D-Bus ListImages, %s images", count(n)) }
func rowImgDBusMeta(n int) string {
	return fmt.Sprintf("D-Bus ListImages + GetImageOSRelease of each, %s images", count(n))
}
func rowImgDBusListLean(n int) string { return rowImgDBusList(n) + " (lean client)" }
func rowImgDBusMetaLean(n int) string { return rowImgDBusMeta(n) + " (lean client)" }
func rowImgVList(n int) string {
	return fmt.Sprintf("Varlink MachineImage.List (more), %s images", count(n))
}
func rowImgVMeta(n int) string {
	return fmt.Sprintf("Varlink MachineImage.List (more) with metadata, %s images", count(n))
}

// rowCPUCall is the CPU time the daemon (bus: its dbus-daemon) spent per
// timed operation of the image row called row, in the same repetitions.
func rowCPUCall(bus bool, row string) string { return cpuWho(bus) + " CPU per operation: " + row }
func rowClone(fs string, mib int) string {
	return fmt.Sprintf("CloneImage of a %s directory image, %s", sizeText(mib), fs)
}

func sizeText(mib int) string {
	if mib%1024 == 0 {
		return strconv.Itoa(mib/1024) + " GiB"
	}
	return strconv.Itoa(mib) + " MiB"
}

// imageEnv is where the images are; pool is the pool the daemons get when
// they (re)start.
type imageEnv struct {
	n           int
	listDir     string
	ext4, btrfs string
	pool        string
	cloneMiB    int
}

// images is nil when the image workloads do not run.
var images *imageEnv

// planImages adds the image rows.
func (b *bench) planImages() {
	if b.cfg.images == 0 {
		return
	}
	r, n := b.rep, b.cfg.images
	for _, row := range []string{rowImgDBusList(n), rowImgDBusMeta(n), rowImgDBusListLean(n), rowImgDBusMetaLean(n)} {
		r.add(gImages, row, "ms", false)
		r.add(gImages, rowCPUCall(false, row), "µs", false)
		r.add(gImages, rowCPUCall(true, row), "µs", false)
	}
	for _, row := range []string{rowImgVList(n), rowImgVMeta(n)} {
		r.add(gImages, row, "ms", false)
		r.add(gImages, rowCPUCall(false, row), "µs", false)
	}
	r.add(gImages, rowClone("ext4", b.cfg.cloneMiB), "ms", false)
	r.add(gImages, rowClone("btrfs (subvolume: a snapshot)", b.cfg.cloneMiB), "ms", false)
}

// setupImages makes the listing set, the ext4 pool and the btrfs pool, each
// pool with its clone source, and the /run/machines mount point machined 252
// needs (removed at the end when the run made it).
func setupImages(cfg config, scratch string) error {
	if cfg.images == 0 {
		return nil
	}
	env := &imageEnv{n: cfg.images, cloneMiB: cfg.cloneMiB, listDir: filepath.Join(scratch, "images")}
	for i := range cfg.images {
		root := filepath.Join(env.listDir, listImagePfx+strconv.Itoa(i))
		if err := os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755); err != nil {
			return err
		}
		os.MkdirAll(filepath.Join(root, "etc"), 0o755)
		os.WriteFile(filepath.Join(root, "usr/lib/os-release"), []byte("ID=bench\nPRETTY_NAME=\"Bench "+strconv.Itoa(i)+"\"\n"), 0o644)
		os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("bench"+strconv.Itoa(i)+"\n"), 0o644)
	}
	var err error
	if env.ext4, err = os.MkdirTemp("/var/tmp", "bench-compare-pool-"); err != nil {
		return err
	}
	atExit(func() { os.RemoveAll(env.ext4) })
	if err := fillTree(filepath.Join(env.ext4, cloneSource), cfg.cloneMiB); err != nil {
		return err
	}
	if env.btrfs, err = btrfsPool(scratch, cfg.cloneMiB); err != nil {
		return err
	}
	if _, err := os.Stat(stockRunImgs); os.IsNotExist(err) {
		if err := os.Mkdir(stockRunImgs, 0o755); err != nil {
			return err
		}
		atExit(func() { os.Remove(stockRunImgs) })
	}
	if _, err := os.Stat(stockPoolPath); os.IsNotExist(err) {
		if err := os.Mkdir(stockPoolPath, 0o700); err != nil {
			return err
		}
		atExit(func() { os.Remove(stockPoolPath) })
	}
	env.pool = env.ext4
	images = env
	return nil
}

// fillTree makes a directory of mib MiB in 64 MiB files of random bytes (no
// holes, nothing a file system could share).
func fillTree(dir string, mib int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	chunk := make([]byte, 1<<20)
	rand.Read(chunk)
	for f := 0; f*64 < mib; f++ {
		fh, err := os.Create(filepath.Join(dir, fmt.Sprintf("blob%d", f)))
		if err != nil {
			return err
		}
		for i := 0; i < 64 && f*64+i < mib; i++ {
			chunk[0], chunk[1] = byte(f), byte(i)
			if _, err := fh.Write(chunk); err != nil {
				fh.Close()
				return err
			}
		}
		if err := fh.Close(); err != nil {
			return err
		}
	}
	return nil
}

// btrfsPool mounts a fresh btrfs on a loop device and makes the clone source a
// subvolume on it.
func btrfsPool(scratch string, mib int) (string, error) {
	img, err := os.CreateTemp("/var/tmp", "bench-compare-btrfs-")
	if err != nil {
		return "", err
	}
	img.Close()
	atExit(func() { os.Remove(img.Name()) })
	size := int64(mib)*3<<20 + 512<<20
	if err := os.Truncate(img.Name(), size); err != nil {
		return "", err
	}
	if out, err := exec.Command("mkfs.btrfs", "-q", img.Name()).CombinedOutput(); err != nil {
		return "", fmt.Errorf("mkfs.btrfs: %v %s", err, out)
	}
	out, err := exec.Command("losetup", "-f", "--show", img.Name()).Output()
	if err != nil {
		return "", fmt.Errorf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	atExit(func() { exec.Command("losetup", "-d", dev).Run() })
	mnt := filepath.Join(scratch, "btrfs")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		return "", err
	}
	if err := syscall.Mount(dev, mnt, "btrfs", 0, ""); err != nil {
		return "", fmt.Errorf("mount btrfs: %w", err)
	}
	atExit(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	src := filepath.Join(mnt, cloneSource)
	if out, err := exec.Command("btrfs", "subvolume", "create", src).CombinedOutput(); err != nil {
		return "", fmt.Errorf("btrfs subvolume create: %v %s", err, out)
	}
	return mnt, fillTree(src, mib)
}

// oursImageArgs are our daemon's flags for the same view.
func oursImageArgs() []string {
	if images == nil {
		return nil
	}
	return []string{"--image-search-path", images.listDir + ":" + images.pool, "--image-pool", images.pool}
}

// runImages runs the image workloads on d, which runs with the ext4 pool.
func (b *bench) runImages(d *daemon) {
	if images == nil {
		return
	}
	n := images.n
	// The D-Bus image rows are measured later, by imagePhase.
	b.varlinkListImages(d, n, false)
	b.varlinkListImages(d, n, true)
	b.clone(d, rowClone("ext4", images.cloneMiB))
	images.pool = images.btrfs
	defer func() { images.pool = images.ext4 }()
	if err := d.restart(); err != nil {
		b.set(gImages, rowClone("btrfs (subvolume: a snapshot)", images.cloneMiB), "ms", false, d, failed(err))
		return
	}
	b.clone(d, rowClone("btrfs (subvolume: a snapshot)", images.cloneMiB))
	images.pool = images.ext4
	if err := d.restart(); err != nil {
		b.logf("%s: restart on the ext4 pool: %v", d.key, err)
	}
}

// imagePhase measures the D-Bus image rows with every daemon running at once,
// interleaved as the D-Bus phase is: each repetition runs every daemon's
// ListImages, then every daemon's ListImages + GetImageOSRelease of each, in
// an order rotated from one repetition to the next, so that a drift in the
// VM's speed lands on all daemons alike. Each workload runs twice: with
// godbus, a client as real ones decode, and with the lean client, which
// leaves the daemon's and its bus's share of the wall clock alone.
func (b *bench) imagePhase(scratch string) {
	n := images.n
	ds, _ := b.startAll(scratch, true)
	defer shutdownAll(ds)
	lean := make([]*dconn, len(ds))
	leanErr := make([]error, len(ds))
	for i, d := range ds {
		if lean[i], leanErr[i] = dbusDial(d.busAddress(), os.Getuid()); leanErr[i] == nil {
			defer lean[i].Close()
		}
	}
	type workload struct {
		row    string
		maxOps int
		lean   bool
		withOS bool
	}
	work := []workload{
		{rowImgDBusList(n), 2000, false, false},
		{rowImgDBusMeta(n), 50, false, true},
		{rowImgDBusListLean(n), 2000, true, false},
		{rowImgDBusMetaLean(n), 50, true, true},
	}
	started := map[string]bool{}
	for _, d := range ds {
		started[d.key] = true
	}
	for _, key := range b.cfg.daemons {
		if !started[key] {
			for _, w := range work {
				for _, r := range []string{w.row, rowCPUCall(false, w.row), rowCPUCall(true, w.row)} {
					b.rep.set(gImages, r, "", false, key, cell{Text: "n/a", Note: "no D-Bus in the image phase"})
				}
			}
		}
	}
	for _, w := range work {
		cpu := make([]cpuTally, len(ds))
		calls := make([][]float64, len(ds))
		medians := make([][]float64, len(ds))
		errs := make([]error, len(ds))
		ops := make([]func() error, len(ds))
		for i, d := range ds {
			if !w.lean {
				ops[i] = listImagesOp(d, n, w.withOS)
			} else if errs[i] = leanErr[i]; errs[i] == nil {
				ops[i] = leanListImagesOp(lean[i], n, w.withOS)
			}
		}
		for rep := 0; rep < b.cfg.duelReps; rep++ {
			for k := range ds {
				i := (k + rep) % len(ds)
				if errs[i] != nil {
					continue
				}
				if w.lean {
					// The lean client reads no image: godbus checks, untimed,
					// that this daemon still lists them all.
					if errs[i] = listImagesOp(ds[i], n, false)(); errs[i] != nil {
						continue
					}
				}
				mark := cpu[i].begin(ds[i])
				med, all, err := latencyRun(b.cfg.dur, 3, w.maxOps, ops[i])
				if err != nil {
					errs[i] = err
					continue
				}
				cpu[i].end(ds[i], mark, len(all))
				calls[i] = append(calls[i], all...)
				medians[i] = append(medians[i], med)
				time.Sleep(50 * time.Millisecond)
			}
		}
		for i, d := range ds {
			if errs[i] != nil {
				b.set(gImages, w.row, "ms", false, d, failed(errs[i]))
				continue
			}
			b.set(gImages, w.row, "ms", false, d, figure(median(calls[i]), medians[i]))
			b.set(gImages, rowCPUCall(false, w.row), "µs", false, d, cpu[i].perOp(false))
			b.set(gImages, rowCPUCall(true, w.row), "µs", false, d, cpu[i].perOp(true))
		}
	}
}

// listImagesOp is one D-Bus ListImages of d, which must list at least n
// images; withOS adds a GetImageOSRelease of each image of the listing set.
func listImagesOp(d *daemon, n int, withOS bool) func() error {
	obj := m1(d.busConn)
	return func() error {
		var list [][]any
		if err := obj.Call(m1Mgr+".ListImages", 0).Store(&list); err != nil {
			return err
		}
		if len(list) < n {
			return fmt.Errorf("ListImages returned %d images, want at least %d", len(list), n)
		}
		if !withOS {
			return nil
		}
		for _, e := range list {
			img, _ := e[0].(string)
			if !strings.HasPrefix(img, listImagePfx) {
				continue
			}
			var osr map[string]string
			if err := obj.Call(m1Mgr+".GetImageOSRelease", 0, img).Store(&osr); err != nil {
				return fmt.Errorf("GetImageOSRelease %s: %w", img, err)
			}
		}
		return nil
	}
}

// leanListImagesOp is listImagesOp on the lean client: the same calls, the
// GetImageOSRelease ones to the listing set's names, known beforehand. A
// reply shorter than n minimal entries is refused; that every image is there
// is godbus's check, once per repetition.
func leanListImagesOp(c *dconn, n int, withOS bool) func() error {
	list := dbusCall(m1Name, string(m1Path), m1Mgr, "ListImages", "", nil)
	var osr [][]byte
	if withOS {
		for i := range n {
			osr = append(osr, dbusCall(m1Name, string(m1Path), m1Mgr, "GetImageOSRelease", "s", dbusString(listImagePfx+strconv.Itoa(i))))
		}
	}
	return func() error {
		got, err := c.call(list)
		if err != nil {
			return fmt.Errorf("ListImages: %w", err)
		}
		if got < n*minImageEntry {
			return fmt.Errorf("ListImages reply of %d bytes, too short for %d images", got, n)
		}
		for i, m := range osr {
			if _, err := c.call(m); err != nil {
				return fmt.Errorf("GetImageOSRelease %s%d: %w", listImagePfx, i, err)
			}
		}
		return nil
	}
}

// minImageEntry is the fewest bytes one ListImages entry (ssbttto) of the
// listing set can take: the three strings' lengths and NULs, the bool and
// the three integers, before any name or padding.
const minImageEntry = 4 + 1 + 4 + 1 + 4 + 8*3 + 4 + 1

func (b *bench) varlinkListImages(d *daemon, n int, withMeta bool) {
	name, params := rowImgVList(n), "{}"
	if withMeta {
		name, params = rowImgVMeta(n), `{"acquireMetadata":"yes"}`
	}
	if d.machineSock == "" {
		b.set(gImages, name, "ms", false, d, na("no io.systemd.MachineImage (Varlink)"))
		return
	}
	v, err := vdial(d.machineSock)
	if err != nil {
		b.set(gImages, name, "ms", false, d, failed(err))
		return
	}
	defer v.Close()
	req := request("io.systemd.MachineImage.List", params, true)
	var cpu cpuTally
	mark := cpu.begin(d)
	ops := 0
	med, s, err := latencies(b.cfg.reps, b.cfg.dur, 3, 2000, func() error {
		ops++
		got, err := v.callMore(req)
		if err != nil {
			return err
		}
		if got < n {
			return fmt.Errorf("List returned %d images, want at least %d", got, n)
		}
		return nil
	})
	if err != nil {
		b.set(gImages, name, "ms", false, d, failed(err))
		return
	}
	cpu.end(d, mark, ops)
	b.set(gImages, name, "ms", false, d, figure(med, s))
	b.set(gImages, rowCPUCall(false, name), "µs", false, d, cpu.perOp(false))
}

// clone times CloneImage of the pool's source, over D-Bus (every daemon has
// it), removing the clone after each repetition, untimed.
func (b *bench) clone(d *daemon, name string) {
	if d.busConn == nil {
		b.set(gImages, name, "ms", false, d, na(d.noBus))
		return
	}
	obj := m1(d.busConn)
	var s []float64
	for range b.cfg.reps {
		t := time.Now()
		if err := obj.Call(m1Mgr+".CloneImage", 0, cloneSource, cloneTarget, false).Err; err != nil {
			b.set(gImages, name, "ms", false, d, failed(fmt.Errorf("CloneImage: %w", err)))
			return
		}
		s = append(s, float64(time.Since(t).Nanoseconds())/1e6)
		if err := obj.Call(m1Mgr+".RemoveImage", 0, cloneTarget).Err; err != nil {
			b.set(gImages, name, "ms", false, d, failed(fmt.Errorf("RemoveImage: %w", err)))
			return
		}
		// The pool must be back to its source alone before the next round.
		if err := checkOnlySource(images.pool); err != nil {
			b.set(gImages, name, "ms", false, d, failed(err))
			return
		}
	}
	b.set(gImages, name, "ms", false, d, figure(median(s), s))
}

func checkOnlySource(pool string) error {
	entries, err := os.ReadDir(pool)
	if err != nil {
		return err
	}
	var left []string
	for _, e := range entries {
		if e.Name() != cloneSource && !strings.HasPrefix(e.Name(), ".#") {
			left = append(left, e.Name())
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("pool holds %v after RemoveImage", left)
	}
	return nil
}

// imageBinds252 is the shell prologue that gives machined 252 the images at
// upstream's paths, in its own mount namespace: $2 the listing set, $3 the pool.
func imageBinds252() (script string, args []string) {
	if images == nil {
		return "", nil
	}
	return `mount --bind "$2" ` + stockRunImgs + `
mount --bind "$3" ` + stockPoolPath + `
`, []string{images.listDir, images.pool}
}
