package tests

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/machined-go/machined/client"
	"github.com/machined-go/machined/internal/dialas"
)

// TestChaosRegistrationFlood: an unprivileged user registers with interface
// lists of millions of entries, then registers as many machines as it can,
// while root keeps registering, listing and unregistering and a userdb lookup
// is made each round. The huge lists are refused while decoding, no state file
// grows, the user gets no more machines than its cap, and root is served
// throughout. The figures are logged with the prefix "chaos".
func TestChaosRegistrationFlood(t *testing.T) {
	needRoot(t)
	const perUID = 128
	d := startDaemon(t, "--units", "none", "--log-level", "info", "--max-machines-per-uid", strconv.Itoa(perUID))
	farm := startFarm(t, 1)
	leaders := nobodyLeaders(t, perUID+20)

	good := newGoodClient(t, d, farm.pids[0])
	good.warm(t)
	base := d.stats(t)
	baseRSS := rssKiB(d.pid())
	rss := sampleRSS(d.pid())
	good.start(d)

	c, err := dialas.Unix(d.sock(), 65534, 65534)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// Ten registrations, each with as many interfaces as 16 MiB holds. The
	// list is built once and written around each request's head and tail
	// (writev): a fresh 16 MiB per request would put this process's garbage
	// collector into the good client's latencies.
	huge := []byte(hugeIfIndices(16<<20 - 512))
	for i := 0; i < 10; i++ {
		head := fmt.Sprintf(`{"method":"io.systemd.Machine.Register","parameters":{"name":"huge%d","class":"container","leader":%d,"ifIndices":`, i, leaders[i])
		c.SetDeadline(time.Now().Add(30 * time.Second))
		bufs := net.Buffers{[]byte(head), huge, []byte("}}\x00")}
		if _, err := bufs.WriteTo(c); err != nil {
			t.Fatalf("huge registration %d: %v", i, err)
		}
		reply, err := readMessage(c)
		c.SetDeadline(time.Time{})
		if err != nil {
			t.Fatalf("huge registration %d: %v", i, err)
		}
		if !bytes.Contains(reply, []byte(`"org.varlink.service.InvalidParameter"`)) || !bytes.Contains(reply, []byte(`"ifIndices"`)) {
			t.Fatalf("huge registration %d answered %.200s, want InvalidParameter ifIndices", i, reply)
		}
	}

	// Then one machine per leader, until the cap answers.
	nobodyClient := dialClient(t, d, asNobody())
	accepted, capped := 0, 0
	for i, pid := range leaders {
		err := nobodyClient.Register(context.Background(), client.RegisterRequest{Name: fmt.Sprintf("flood%d", i), Class: client.ClassContainer, LeaderPID: pid})
		switch {
		case err == nil:
			accepted++
		case errors.Is(err, client.ErrSystem):
			if !errors.Is(err, syscall.ENOBUFS) {
				t.Fatalf("registration %d refused with %v, want ENOBUFS", i, err)
			}
			capped++
		default:
			t.Fatalf("registration %d: %v", i, err)
		}
	}
	peak := d.stats(t)
	rssPeak := rss.stop()
	good.finish(t)
	stateBytes := dirBytes(t, d.stateDir())

	t.Logf("chaos flood: 10 registrations of %d interfaces each refused; %d machines accepted, %d refused by the cap of %d; %s",
		bytes.Count(huge, []byte(","))+1, accepted, capped, perUID, good.summary())
	t.Logf("chaos flood: RSS baseline %.1f MiB, peak %.1f MiB; fds %d -> %d; state directory %d bytes",
		float64(baseRSS)/1024, float64(rssPeak)/1024, base.fds, peak.fds, stateBytes)
	if accepted != perUID || capped != len(leaders)-perUID {
		t.Errorf("nobody got %d machines and %d refusals, want %d and %d", accepted, capped, perUID, len(leaders)-perUID)
	}
	if rssPeak > 256<<10 {
		t.Errorf("RSS peaked at %.1f MiB, over 256 MiB", float64(rssPeak)/1024)
	}
	if stateBytes > 1<<20 {
		t.Errorf("state directory holds %d bytes after the flood", stateBytes)
	}
	if peak.fds > base.fds+perUID+64 {
		t.Errorf("fds %d -> %d: more than the cap's pidfds", base.fds, peak.fds)
	}
}

// nobodyLeaders starts n sleeping processes owned by uid 65534.
func nobodyLeaders(t *testing.T, n int) []int {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf(`i=0; while [ $i -lt %d ]; do sleep 100000 & echo $!; i=$((i+1)); done; wait`, n))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	var pids []int
	sc := bufio.NewScanner(out)
	for len(pids) < n && sc.Scan() {
		pid, _ := strconv.Atoi(strings.TrimSpace(sc.Text()))
		pids = append(pids, pid)
	}
	if len(pids) != n {
		t.Fatalf("started %d of %d leaders as nobody", len(pids), n)
	}
	return pids
}

// hugeIfIndices is a JSON array of 1s filling about size bytes.
func hugeIfIndices(size int) string {
	var b bytes.Buffer
	b.Grow(size)
	b.WriteString("[1")
	for b.Len() < size-2 {
		b.WriteString(",1")
	}
	b.WriteByte(']')
	return b.String()
}

// dirBytes is the total size of the regular files in dir.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
