package containerfs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/copystreams"
)

// bigTree writes files large enough for a background stream (set-id and
// read-only modes among them, whose bits a write after the chmod would clear)
// beside small ones, with times set apart from now.
func bigTree(t *testing.T, top string, big int) {
	t.Helper()
	for i := range big {
		dir := top + "/d" + strconv.Itoa(i%3)
		os.MkdirAll(dir, 0o755)
		p := dir + "/big" + strconv.Itoa(i)
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte(i + 1)}, copystreams.MinSize+i*(300<<10)), 0o644); err != nil {
			t.Fatal(err)
		}
		unix.Chmod(p, []uint32{0o4755, 0o400, 0o640}[i%3])
		os.WriteFile(dir+"/small"+strconv.Itoa(i), []byte("small"), 0o600)
	}
	for _, p := range []string{top + "/d0", top + "/d1", top + "/d2", top} {
		ts := unix.NsecToTimespec(1_600_000_000_000_000_000)
		for _, e := range []string{"", "/big0", "/small0"} {
			unix.UtimesNanoAt(unix.AT_FDCWD, p+e, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
		}
	}
}

func needStreams(t *testing.T) {
	t.Helper()
	if copystreams.Count() == 0 {
		t.Skip("one CPU: a copy makes no background streams")
	}
}

// Large files copied while the walk goes on arrive whole, with their modes
// (set-id bits included) and times set after their content, and the tree is
// renamed into place only once every one of them is done.
func TestCopyLargeFilesInBackground(t *testing.T) {
	needStreams(t)
	src, dst := t.TempDir(), t.TempDir()
	bigTree(t, src+"/top", 12)
	var started, copied, early atomic.Int32
	streamStarted = func() { started.Add(1) }
	fileCopied = func() {
		copied.Add(1)
		if _, err := os.Lstat(dst + "/top"); err == nil {
			early.Add(1) // renamed into place before this file was done
		}
	}
	defer func() { streamStarted, fileCopied = nil, nil }()
	if err := CopyAlone(context.Background(), side(t, src+"/top"), side(t, dst+"/top"), Options{}); err != nil {
		t.Fatal(err)
	}
	sameTree(t, src+"/top", dst+"/top", false)
	if started.Load() == 0 {
		t.Error("no file went to a background stream")
	}
	if copied.Load() != 24 {
		t.Errorf("%d files reported copied, want 24", copied.Load())
	}
	if early.Load() != 0 {
		t.Errorf("the tree was under its final name before %d of its files were copied", early.Load())
	}
	noTemp(t, dst)
}

// A background stream that fails fails the copy with its own error, and
// nothing is left under the final name or a temporary one. The one large file
// outgrows the file size limit (EFBIG); the walk's own files stay below it.
func TestCopyBackgroundFailure(t *testing.T) {
	needStreams(t)
	src, dst := t.TempDir(), t.TempDir()
	os.MkdirAll(src+"/top/d", 0o755)
	for i := range 200 {
		os.WriteFile(src+"/top/d/small"+strconv.Itoa(i), []byte("small"), 0o644)
	}
	os.WriteFile(src+"/top/big", bytes.Repeat([]byte("b"), 3<<20), 0o644)
	var started atomic.Int32
	streamStarted = func() { started.Add(1) }
	defer func() { streamStarted = nil }()
	var old unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_FSIZE, &old)
	// Beyond the limit a write fails with EFBIG: Go ignores SIGXFSZ.
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: 1 << 20, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	err := CopyAlone(context.Background(), side(t, src+"/top"), side(t, dst+"/top"), Options{})
	unix.Setrlimit(unix.RLIMIT_FSIZE, &old)
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("copy of a file beyond the size limit: %v, want EFBIG", err)
	}
	if started.Load() != 1 {
		t.Errorf("%d files went to a background stream, want the large one", started.Load())
	}
	if _, err := os.Lstat(dst + "/top"); err == nil {
		t.Error("failed copy left its tree under the final name")
	}
	noTemp(t, dst)
}
