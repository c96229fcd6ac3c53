package containerfs

import (
	"context"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service/proc"
)

// The type a directory listing gives is only a hint: whatever an entry listed
// as a regular file or directory turns out to be when opened decides. A FIFO
// does not block the open, a socket, symlink or device is pinned instead of
// read, and only regular files and directories come back readable.
func TestOpenSourceChecksTheListedType(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/file", []byte("x"), 0o644)
	os.Mkdir(dir+"/dir", 0o755)
	os.Symlink("file", dir+"/link")
	if err := unix.Mkfifo(dir+"/fifo", 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", dir+"/sock")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	kinds := map[string]uint32{"file": unix.S_IFREG, "dir": unix.S_IFDIR, "link": unix.S_IFLNK, "fifo": unix.S_IFIFO, "sock": unix.S_IFSOCK}
	if os.Geteuid() == 0 {
		// The same device as /dev/null.
		if err := unix.Mknod(dir+"/null", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err == nil {
			kinds["null"] = unix.S_IFCHR
		}
	}
	d, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(d)
	c := &copier{ctx: context.Background(), src: asIs(t)}
	for name, kind := range kinds {
		for _, listed := range []uint8{unix.DT_REG, unix.DT_DIR, unix.DT_UNKNOWN} {
			src, err := c.openSource(d, dirent{name: name, typ: listed})
			if err != nil {
				t.Fatalf("%s listed as %d: %v", name, listed, err)
			}
			if got := src.st.Mode & unix.S_IFMT; got != kind {
				t.Errorf("%s listed as %d: opened a %o, want %o", name, listed, got, kind)
			}
			wantReadable := listed != unix.DT_UNKNOWN && (kind == unix.S_IFREG || kind == unix.S_IFDIR)
			if src.readable != wantReadable {
				t.Errorf("%s listed as %d: readable %v, want %v", name, listed, src.readable, wantReadable)
			}
			var flags int
			flags, err = unix.FcntlInt(uintptr(src.fd), unix.F_GETFL, 0)
			if err != nil {
				t.Fatal(err)
			}
			if isPath := flags&unix.O_PATH != 0; isPath == src.readable {
				t.Errorf("%s listed as %d: O_PATH %v with readable %v", name, listed, isPath, src.readable)
			}
			unix.Close(src.fd)
		}
	}
}

// An entry listed as a regular file that the source identity may not read is
// refused with EACCES, as through the pin.
func TestOpenSourceUnreadable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as nobody")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.WriteFile(dir+"/secret", []byte("x"), 0o600)
	d, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(d)
	nobody, err := proc.StartOwnerThread(proc.Owner{UID: 65534, GID: 65534})
	if err != nil {
		t.Fatal(err)
	}
	defer nobody.Close()
	c := &copier{ctx: context.Background(), src: nobody}
	src, err := c.openSource(d, dirent{name: "secret", typ: unix.DT_REG})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(src.fd)
	if src.readable {
		t.Fatal("nobody opened root's 0600 file for reading")
	}
	if _, err := c.openSourceFile(&src); err != unix.EACCES {
		t.Fatalf("reopening root's 0600 file as nobody: %v, want EACCES", err)
	}
}
