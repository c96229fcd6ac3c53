package proc

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tree builds files below dir: a value starting with "->" makes a symlink,
// "fifo" a FIFO, "dir" a directory.
func tree(t *testing.T, files map[string]string) (dir string, rootfd int) {
	t.Helper()
	dir = t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasPrefix(content, "->"):
			err = os.Symlink(content[2:], p)
		case content == "fifo":
			err = unix.Mkfifo(p, 0o644)
		case content == "dir":
			err = os.Mkdir(p, 0o755)
		default:
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	rootfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(rootfd) })
	return dir, rootfd
}

// hostID is the host's os-release ID: what an escape from the tree would read.
func hostID(t *testing.T) string {
	osr, err := HostOSRelease()
	if err != nil {
		t.Skip(err)
	}
	for _, kv := range osr {
		if v, ok := strings.CutPrefix(kv, "ID="); ok {
			return v
		}
	}
	return ""
}

func TestOpenInRootResolvesInside(t *testing.T) {
	host := hostID(t)
	for _, tc := range []struct {
		name  string
		files map[string]string
	}{
		{"absolute symlink", map[string]string{
			"etc/os-release":     "->/usr/lib/os-release",
			"usr/lib/os-release": "ID=inside\n",
		}},
		{"dot-dot symlink", map[string]string{
			"etc/os-release":     "->../../../../../../../usr/lib/os-release",
			"usr/lib/os-release": "ID=inside\n",
		}},
		{"absolute directory symlink", map[string]string{
			"etc":                "->/usr/etc",
			"usr/etc/os-release": "ID=inside\n",
		}},
	} {
		_, root := tree(t, tc.files)
		got, err := osReleaseAt(root)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !slices.Equal(got, []string{"ID=inside"}) {
			t.Errorf("%s: read %q (host ID %q): resolution escaped the root", tc.name, got, host)
		}
	}
}

func TestOpenInRootRefusesMagicLinks(t *testing.T) {
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(root)
	if fd, err := openInRoot(root, "proc/self/root/etc/os-release"); !errors.Is(err, syscall.ELOOP) {
		unix.Close(fd)
		t.Errorf("magic link: %v, want ELOOP", err)
	}
	// A symlink into /proc from inside a tree resolves inside the tree.
	_, tr := tree(t, map[string]string{"etc/os-release": "->/proc/self/root/etc/os-release"})
	if _, err := osReleaseAt(tr); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("symlink to /proc: %v, want ENOENT", err)
	}
}

func TestOSReleaseAtFiles(t *testing.T) {
	big := strings.Repeat("#", maxOSRelease-len("ID=big\n")) + "\nID=big"
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
		err   error
	}{
		{"etc wins", map[string]string{"etc/os-release": "ID=etc\n", "usr/lib/os-release": "ID=usr\n"}, []string{"ID=etc"}, nil},
		{"usr fallback", map[string]string{"usr/lib/os-release": "ID=usr\nNAME='U'\n"}, []string{"ID=usr", "NAME=U"}, nil},
		{"dangling etc falls back", map[string]string{"etc/os-release": "->/nowhere", "usr/lib/os-release": "ID=usr\n"}, []string{"ID=usr"}, nil},
		{"none", map[string]string{"etc/hostname": "x\n"}, nil, syscall.ENOENT},
		{"empty root", map[string]string{}, nil, syscall.ENOENT},
		{"fifo", map[string]string{"etc/os-release": "fifo"}, nil, syscall.EINVAL},
		{"directory", map[string]string{"etc/os-release": "dir"}, nil, syscall.EISDIR},
		{"at the limit", map[string]string{"etc/os-release": big}, []string{"ID=big"}, nil},
		{"over the limit", map[string]string{"etc/os-release": big + "\n"}, nil, syscall.EFBIG},
	} {
		_, root := tree(t, tc.files)
		done := make(chan struct{})
		var got []string
		var err error
		go func() { got, err = osReleaseAt(root); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: osReleaseAt blocked", tc.name)
		}
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: err = %v, want %v", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestOSReleaseOfChild(t *testing.T) {
	p := openChild(t, startChild(t, nil, "sleep", "60"))
	osr, err := OSRelease(p, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	host, err := HostOSRelease()
	if err != nil {
		t.Fatal(err)
	}
	if len(osr) == 0 || !slices.Equal(host, osr) {
		t.Errorf("child's os-release %q differs from the host's %q", osr, host)
	}
}

func TestOSReleaseGone(t *testing.T) {
	cmd := startChild(t, nil, "sleep", "60")
	p := openChild(t, cmd)
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := OSRelease(p, Owner{}); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("OSRelease after reap = %v, want ESRCH", err)
	}
}

// TestOSReleaseChroot runs sleep chrooted into a tree whose os-release is an
// absolute symlink: it must resolve inside the process' root, not ours.
func TestOSReleaseChroot(t *testing.T) {
	needRoot(t)
	dir, _ := tree(t, map[string]string{
		"etc/os-release":     "->/usr/lib/os-release",
		"usr/lib/os-release": "ID=chrooted\nPRETTY_NAME=\"Chroot Test\"\n",
	})
	installSleep(t, dir)
	p := openChild(t, startChild(t, &syscall.SysProcAttr{Chroot: dir}, "/bin/sleep", "60"))
	osr, err := OSRelease(p, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ID=chrooted", "PRETTY_NAME=Chroot Test"}; !slices.Equal(osr, want) {
		t.Errorf("OSRelease = %q, want %q", osr, want)
	}
}

// installSleep copies sleep and the libraries ldd lists into dir.
func installSleep(t *testing.T, dir string) {
	t.Helper()
	bin, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip(err)
	}
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Skipf("ldd %s: %v", bin, err)
	}
	files := map[string]string{"/bin/sleep": bin}
	for line := range strings.SplitSeq(string(out), "\n") {
		for f := range strings.FieldsSeq(line) {
			if strings.HasPrefix(f, "/") {
				files[f] = f
			}
		}
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "/") {
			files[f[0]] = f[0]
		}
	}
	for dst, src := range files {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Skip(err)
		}
		p := filepath.Join(dir, dst)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}
