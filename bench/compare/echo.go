package main

import (
	"bufio"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// The bare C echo server (csrc/echoserver.c) is the floor of the userdb rows:
// the lean client's round trip with a server that does nothing at all, on this
// machine, in the same minutes. A daemon's persistent-connection lookups are
// compared with it by alternating repetitions of the two.

const (
	rowEcho      = "bare C echo server, same client and requests, persistent connection (the floor)"
	rowEchoShare = "by uid, persistent connection, 2 machines: share of the echo server's rate (interleaved)"
)

// echoServer is the running helper.
type echoServer struct {
	sock string
	cmd  *exec.Cmd
}

func startEcho(bin, dir string) (*echoServer, error) {
	sock := filepath.Join(dir, "echo.sock")
	cmd := exec.Command(bin, sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("echoserver did not start: %q %v", line, err)
	}
	return &echoServer{sock: sock, cmd: cmd}, nil
}

func (e *echoServer) close() {
	e.cmd.Process.Kill()
	e.cmd.Wait()
}
