package copyhelper

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/copystreams"
	"github.com/machined-go/machined/service/containerfs"
	"github.com/machined-go/machined/service/proc"
)

// Main is the helper: it reads the request, makes the copy and writes the
// result. It returns the process's exit status: 0 whenever a result was
// written, the copy's failure included.
func Main() int {
	// The walk and each background stream may keep a scheduler slot through
	// their raw system calls; one more runs what ends the copy (the signal,
	// the lifeline) at once.
	runtime.GOMAXPROCS(copystreams.Count() + 2)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	in := bufio.NewReader(io.LimitReader(os.Stdin, maxRequest))
	line, err := in.ReadBytes('\n')
	if err != nil {
		fmt.Fprintf(os.Stderr, "reading the request: %v\n", err)
		return 2
	}
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		fmt.Fprintf(os.Stderr, "decoding the request: %v\n", err)
		return 2
	}
	// The lifeline: the daemon holds the pipe open until the copy ends.
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()

	err = copyRequest(ctx, req)
	res := result{}
	if err != nil {
		res.Error = err.Error()
		var errno syscall.Errno
		if errors.As(err, &errno) {
			res.Errno = int(errno)
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 2
	}
	return 0
}

func copyRequest(ctx context.Context, req request) error {
	for _, fd := range []int{srcDirFD, dstDirFD} {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("fd %d is not a directory: %w", fd, unix.EBADF)
		}
	}
	src, err := proc.StartOwnerThread(req.SrcOwner)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := proc.StartOwnerThread(req.DstOwner)
	if err != nil {
		return err
	}
	defer dst.Close()
	return containerfs.CopyAlone(ctx,
		containerfs.Side{Dir: srcDirFD, Name: req.SrcName, As: src},
		containerfs.Side{Dir: dstDirFD, Name: req.DstName, As: dst},
		req.Options)
}
