package persist

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/bufpool"
	"github.com/machined-go/machined/internal/quicksys"
)

// Dir is the state directory.
type Dir struct{ Path string }

// MaxFileSize bounds a state file, on both sides: Save refuses to write a larger
// record and Load refuses (and removes) a larger file, so a machine can never be
// saved in a form that a restart would not read back. Real records are a few
// hundred bytes; the core's request bounds keep every valid request far below.
const MaxFileSize = 64 << 10

// ErrTooLarge is Save's answer to a record whose encoding exceeds MaxFileSize.
var ErrTooLarge = fmt.Errorf("state record larger than %d bytes", MaxFileSize)

// Ensure creates the directory; other programs test its existence to detect machined.
func (d Dir) Ensure() error { return os.MkdirAll(d.Path, 0o755) }

// encodeBufs are Save's encoding buffers: a record is a few hundred bytes,
// written on every registration.
var encodeBufs = bufpool.New(512, 64<<10)

// Save writes a record atomically (temp file + rename), so a crash at any moment
// leaves either the old or the new file, never a torn one. There is no fsync: the
// directory lives on tmpfs (/run) and does not outlive a reboot anyway, and the
// rename alone keeps a killed daemon's files whole. A machine that owns its unit
// gets the "unit:<unit>" link sd-login reads.
func (d Dir) Save(r Record) error {
	// Saves of one name never overlap (the registry serializes them), so a fixed
	// temp name is enough; Load removes one a crash left behind.
	var tmpBuf, finalBuf pathBuf
	tmp := d.in(&tmpBuf, ".#", r.Name)
	fd, err := quicksys.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return pathError("create", tmp, err)
	}
	bp := encodeBufs.Get()
	data := appendEncoded((*bp)[:0], r)
	if len(data) > MaxFileSize {
		encodeBufs.Put(bp, data)
		quicksys.Close(fd)
		quicksys.Unlink(tmp)
		return fmt.Errorf("save %s: %w", r.Name, ErrTooLarge)
	}
	n, err := quicksys.Write(fd, data)
	if err == nil && n != len(data) {
		err = io.ErrShortWrite
	}
	encodeBufs.Put(bp, data)
	if err == nil && umask()&0o644 != 0 {
		err = unix.Fchmod(fd, 0o644) // the file is ABI: 0644 whatever the umask
	}
	if cerr := quicksys.Close(fd); err == nil {
		err = cerr
	}
	if err == nil {
		err = quicksys.Rename(tmp, d.in(&finalBuf, "", r.Name))
	}
	if err != nil {
		quicksys.Unlink(tmp)
		return fmt.Errorf("save %s: %w", r.Name, err)
	}
	if r.Unit != "" && r.Subgroup == "" {
		return d.link(r.Unit, r.Name)
	}
	return nil
}

// SaveIfChanged saves r unless old, the file's current content, already is
// its encoding: a restart then leaves the files it restores untouched. The
// unit link is checked either way, since a reader needs it as much as the file.
func (d Dir) SaveIfChanged(r Record, old []byte) (written bool, err error) {
	bp := encodeBufs.Get()
	data := appendEncoded((*bp)[:0], r)
	same := bytes.Equal(data, old)
	encodeBufs.Put(bp, data)
	if !same {
		return true, d.Save(r)
	}
	if r.Unit != "" && r.Subgroup == "" {
		var buf [256]byte // machine names are at most 64 bytes
		if n, err := quicksys.Readlink(filepath.Join(d.Path, "unit:"+r.Unit), buf[:]); err != nil || string(buf[:n]) != r.Name {
			return false, d.link(r.Unit, r.Name)
		}
	}
	return false, nil
}

// link points "unit:<unit>" at name. A new link is made in place; one that
// exists is replaced through a temp link and a rename, so readers never see it
// missing.
func (d Dir) link(unit, name string) error {
	var finalBuf, tmpBuf pathBuf
	final := d.in(&finalBuf, "unit:", unit)
	err := quicksys.Symlink(name, final)
	if err != unix.EEXIST {
		return pathError("symlink", final, err)
	}
	tmp := d.in(&tmpBuf, ".#link:", name) // ":" never occurs in machine names
	if err = quicksys.Symlink(name, tmp); err == unix.EEXIST {
		quicksys.Unlink(tmp) // a crash left it behind
		err = quicksys.Symlink(name, tmp)
	}
	if err != nil {
		return pathError("symlink", tmp, err)
	}
	if err := quicksys.Rename(tmp, final); err != nil {
		quicksys.Unlink(tmp)
		return pathError("rename", tmp, err)
	}
	return nil
}

// pathError wraps a raw errno as the os package would; nil stays nil. It keeps
// a copy of path, which may be one of d.in's strings on the caller's stack.
func pathError(op, path string, err error) error {
	if err == nil {
		return nil
	}
	return &os.PathError{Op: op, Path: strings.Clone(path), Err: err}
}

// pathBuf holds a path that d.in builds on the caller's stack: a registration
// and its removal name five files here, and each filepath.Join allocated it
// and cleaned it again.
type pathBuf [256]byte

// in returns d.Path + "/" + prefix + name, in buf when it fits. The string
// shares buf's memory: it is for the system calls at hand only, and what keeps
// it must copy it (pathError does). Names never contain "/" (machine and unit
// names are validated), so this is filepath.Join's result for a clean d.Path.
func (d Dir) in(buf *pathBuf, prefix, name string) string {
	n := len(d.Path) + 1 + len(prefix) + len(name)
	if d.Path == "" || n > len(buf) {
		return filepath.Join(d.Path, prefix+name)
	}
	b := append(buf[:0], d.Path...)
	b = append(b, '/')
	b = append(b, prefix...)
	b = append(b, name...)
	return unsafe.String(&b[0], len(b))
}

// Remove deletes a record and its unit link, if the link still points at it.
func (d Dir) Remove(name, unit string) error {
	return d.remove(name, unit, false)
}

// RemoveOwn deletes a record and its unit link without reading the link first:
// for a caller that knows the link is the record's, as the registry does for a
// machine that holds its unit (no other machine can have saved that link since).
func (d Dir) RemoveOwn(name, unit string) error {
	return d.remove(name, unit, true)
}

func (d Dir) remove(name, unit string, own bool) error {
	var fileBuf, linkBuf pathBuf
	file := d.in(&fileBuf, "", name)
	err := quicksys.Unlink(file)
	if err == unix.ENOENT {
		err = nil
	}
	err = pathError("remove", file, err)
	if unit == "" {
		return err
	}
	link := d.in(&linkBuf, "unit:", unit)
	if !own {
		var buf [256]byte // machine names are at most 64 bytes
		if n, lerr := quicksys.Readlink(link, buf[:]); lerr != nil || string(buf[:n]) != name {
			return err
		}
	}
	if rerr := quicksys.Unlink(link); rerr != nil && rerr != unix.ENOENT && err == nil {
		err = pathError("remove", link, rerr)
	}
	return err
}

// Stored is a record as Load found it, with the file's bytes for
// SaveIfChanged.
type Stored struct {
	Record
	Data []byte
}

// Load reads every record. A bad file costs only itself: it is reported and the
// rest is loaded. Temp files a crash left behind are removed, and so is a file
// over MaxFileSize with the unit link pointing at it: no Save writes one, so it is
// not ours to keep, and left in place it would be skipped again on every restart.
func (d Dir) Load() ([]Stored, []error) {
	ents, err := os.ReadDir(d.Path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, []error{err}
	}
	var recs []Stored
	var errs []error
	oversized := map[string]bool{}
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, ".#"):
			os.Remove(filepath.Join(d.Path, name))
			continue
		case strings.HasPrefix(name, "unit:"), !e.Type().IsRegular(), !ValidMachineName(name):
			continue
		}
		r, data, err := d.loadOne(name)
		if errors.Is(err, ErrTooLarge) {
			oversized[name] = true
			if rerr := d.Remove(name, ""); rerr != nil {
				err = fmt.Errorf("%w (and cannot remove it: %v)", err, rerr)
			} else {
				err = fmt.Errorf("%w: removed", err)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("state file %s: %w", filepath.Join(d.Path, name), err))
			continue
		}
		recs = append(recs, Stored{r, data})
	}
	if len(oversized) > 0 {
		d.removeLinksTo(ents, oversized)
	}
	return recs, errs
}

// removeLinksTo removes the "unit:" links that point at one of names.
func (d Dir) removeLinksTo(ents []os.DirEntry, names map[string]bool) {
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "unit:") {
			continue
		}
		link := filepath.Join(d.Path, e.Name())
		if target, err := os.Readlink(link); err == nil && names[target] {
			os.Remove(link)
		}
	}
}

func (d Dir) loadOne(name string) (Record, []byte, error) {
	f, err := os.Open(filepath.Join(d.Path, name))
	if err != nil {
		return Record{}, nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return Record{}, nil, err
	}
	if len(data) > MaxFileSize {
		return Record{}, nil, ErrTooLarge
	}
	r, err := Decode(name, data)
	return r, data, err
}

// umask reads the process umask once; the daemon sets 022 at start, so the
// fchmod in Save is normally not needed.
var umask = sync.OnceValue(func() int {
	m := unix.Umask(0)
	unix.Umask(m)
	return m
})
