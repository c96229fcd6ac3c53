package persist

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Dir is the state directory.
type Dir struct{ Path string }

// maxFileSize bounds what Load reads per file: real records are a few hundred bytes.
const maxFileSize = 64 << 10

// Ensure creates the directory; other programs test its existence to detect machined.
func (d Dir) Ensure() error { return os.MkdirAll(d.Path, 0o755) }

// Save writes a record atomically (temp file + rename), so a crash at any moment
// leaves either the old or the new file, never a torn one. A machine that owns its
// unit gets the "unit:<unit>" link sd-login reads.
func (d Dir) Save(r Record) error {
	f, err := os.CreateTemp(d.Path, ".#"+r.Name)
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(Encode(r))
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(d.Path, r.Name))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if r.Unit != "" && r.Subgroup == "" {
		return d.link(r.Unit, r.Name)
	}
	return nil
}

func (d Dir) link(unit, name string) error {
	tmp := filepath.Join(d.Path, ".#unit"+name)
	os.Remove(tmp)
	if err := os.Symlink(name, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(d.Path, "unit:"+unit)); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// Remove deletes a record and its unit link, if the link still points at it.
func (d Dir) Remove(name, unit string) error {
	err := os.Remove(filepath.Join(d.Path, name))
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if unit != "" {
		link := filepath.Join(d.Path, "unit:"+unit)
		if target, lerr := os.Readlink(link); lerr == nil && target == name {
			if rerr := os.Remove(link); rerr != nil && err == nil {
				err = rerr
			}
		}
	}
	return err
}

// Load reads every record. A bad file costs only itself: it is reported and the
// rest is loaded. Temp files a crash left behind are removed.
func (d Dir) Load() ([]Record, []error) {
	ents, err := os.ReadDir(d.Path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, []error{err}
	}
	var recs []Record
	var errs []error
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, ".#"):
			os.Remove(filepath.Join(d.Path, name))
			continue
		case strings.HasPrefix(name, "unit:"), !e.Type().IsRegular(), !ValidMachineName(name):
			continue
		}
		r, err := d.loadOne(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("state file %s: %w", filepath.Join(d.Path, name), err))
			continue
		}
		recs = append(recs, r)
	}
	return recs, errs
}

func (d Dir) loadOne(name string) (Record, error) {
	f, err := os.Open(filepath.Join(d.Path, name))
	if err != nil {
		return Record{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return Record{}, err
	}
	if len(data) > maxFileSize {
		return Record{}, fmt.Errorf("larger than %d bytes", maxFileSize)
	}
	return Decode(name, data)
}
