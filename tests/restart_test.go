package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/machined-go/machined/client"
)

// A restart over many persisted machines binds its sockets before it
// restores them: a client connecting as soon as the socket is there is
// accepted and answered once the restore is done, with everything restored.
// Files whose content the restore would not change keep their inode and
// mtime; a file in 252's format (no LEADER_PIDFDID) is rewritten.
func TestRestartServesWhileRestoring(t *testing.T) {
	needRoot(t)
	const n = 2000
	d := startDaemon(t, "--units", "none", "--log-level", "info")
	farm := startFarm(t, n+1)
	c := oneShotClient(t, d)
	for i := 0; i < n; i++ {
		if err := c.Register(context.Background(), client.RegisterRequest{Name: fmt.Sprintf("m%d", i), Class: client.ClassContainer, LeaderPID: farm.pids[i]}); err != nil {
			t.Fatalf("register m%d: %v", i, err)
		}
	}
	c.Close()
	d.stop(syscall.SIGTERM)
	old252 := filepath.Join(d.stateDir(), "old252")
	os.WriteFile(old252, []byte(fmt.Sprintf("# This is private data. Do not parse.\nNAME=old252\nSCOPE=peer-old.scope\nCLASS=container\nLEADER=%d\nREALTIME=1795528692123854\nMONOTONIC=%d\n", farm.pids[n], uptimeMicros(t))), 0o644)
	before := map[string]os.FileInfo{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("m%d", i)
		fi, err := os.Stat(filepath.Join(d.stateDir(), name))
		if err != nil {
			t.Fatal(err)
		}
		before[name] = fi
	}
	old252Before, _ := os.Stat(old252)

	logPath := filepath.Join(d.dir, "daemon.log")
	logStart := fileSize(logPath)
	lf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	d.log = lf
	d.cmd = exec.Command(daemonBin, d.args...)
	d.cmd.Stdout, d.cmd.Stderr = lf, lf
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Connect the moment the log says the socket is bound.
	eventually(t, "the new daemon to bind its socket", func() bool {
		return bytes.Contains(readFrom(logPath, logStart), []byte(`listening socket="`+d.sock()))
	})
	early, err := client.Dial(context.Background(), d.sock())
	if err != nil {
		t.Fatalf("a connection right after the bind was refused: %v", err)
	}
	defer early.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := 0
	for _, err := range early.List(ctx, "") {
		if err != nil {
			t.Fatalf("the early client got no complete answer: %v", err)
		}
		got++
	}
	log := readFrom(logPath, logStart)
	bound := bytes.Index(log, []byte(`listening socket="`+d.sock()))
	restored := bytes.Index(log, []byte("state restored"))
	if restored < 0 || bound > restored {
		t.Errorf("the socket was bound after the restore (log order: listening at %d, state restored at %d)", bound, restored)
	}
	if want := n + 2; got != want { // .host and old252 too
		t.Errorf("the early client listed %d machines, want %d", got, want)
	}

	rewritten := 0
	for name, fi := range before {
		now, err := os.Stat(filepath.Join(d.stateDir(), name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !os.SameFile(fi, now) || !now.ModTime().Equal(fi.ModTime()) {
			rewritten++
		}
	}
	if rewritten > 0 {
		t.Errorf("%d of %d unchanged state files were rewritten", rewritten, n)
	}
	now, err := os.Stat(old252)
	if err != nil {
		t.Fatal(err)
	}
	if os.SameFile(old252Before, now) {
		t.Error("the 252 state file was not rewritten")
	}
	if b, _ := os.ReadFile(old252); !strings.Contains(string(b), "LEADER_PIDFDID=") {
		t.Errorf("the rewritten 252 file lacks LEADER_PIDFDID:\n%s", b)
	}
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func readFrom(path string, off int64) []byte {
	b, _ := os.ReadFile(path)
	if int64(len(b)) < off {
		return nil
	}
	return b[off:]
}
