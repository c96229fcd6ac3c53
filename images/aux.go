package images

import (
	"errors"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Auxiliary files travel with their image: its .nspawn settings (in the settings
// directories and next to the image) and the Verity data next to it.

// verityAuxSuffixes name the files next to an image that belong to it.
var verityAuxSuffixes = []string{".roothash", ".roothash.p7s", ".usrhash", ".usrhash.p7s", ".verity"}

// auxFiles lists the paths of img's auxiliary files (existing or not), each with
// the suffix that follows the image name.
func (p *Pool) auxFiles(img Image) (paths, suffixes []string) {
	seen := map[string]bool{}
	add := func(path, suffix string) {
		if !seen[path] {
			seen[path] = true
			paths, suffixes = append(paths, path), append(suffixes, suffix)
		}
	}
	for _, d := range p.cfg.NspawnDirs {
		add(filepath.Join(d, img.Name+".nspawn"), ".nspawn")
	}
	dir := filepath.Dir(img.Path)
	add(filepath.Join(dir, img.Name+".nspawn"), ".nspawn")
	for _, s := range verityAuxSuffixes {
		add(filepath.Join(dir, img.Name+s), s)
	}
	return paths, suffixes
}

// renameAux renames img's auxiliary files to newName, each in its directory.
// Best effort, as upstream: the image itself has been renamed already.
func (p *Pool) renameAux(img Image, newName string) {
	paths, suffixes := p.auxFiles(img)
	for i, path := range paths {
		to := filepath.Join(filepath.Dir(path), newName+suffixes[i])
		_ = unix.Renameat2(unix.AT_FDCWD, path, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	}
}

// removeAux removes img's auxiliary files. Best effort.
func (p *Pool) removeAux(img Image) {
	paths, _ := p.auxFiles(img)
	for _, path := range paths {
		_ = unix.Unlink(path)
	}
}

// cloneAux copies img's auxiliary files to newName, each in its directory.
// Best effort.
func (p *Pool) cloneAux(img Image, newName string) {
	paths, suffixes := p.auxFiles(img)
	for i, path := range paths {
		to := filepath.Join(filepath.Dir(path), newName+suffixes[i])
		if err := copyFileAtomic(path, to, 0o644); err != nil && !errors.Is(err, unix.ENOENT) {
			continue
		}
	}
}
