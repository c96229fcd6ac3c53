package tests

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/machined-go/machined/client"
	"golang.org/x/sys/unix"
)

// Benchmarks against the built daemon. `make bench` runs them; the figures go
// into docs/BENCHMARKS.md. They report, they never assert a time.

func benchDaemon(b *testing.B) *daemon {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	d := &daemon{dir: mustTempDir(b)}
	d.args = []string{"--runtime-dir", d.dir, "--bus", "none", "--units", "none", "--log-level", "warning"}
	startBench(b, d)
	b.Cleanup(func() { d.cmd.Process.Signal(syscall.SIGTERM); d.cmd.Wait() })
	return d
}

// mustTempDir is a fresh tmpfs, as /run is on every systemd host (on this
// workplace's containers /run is plain ext4, where each state-file rename costs
// a journal write). MACHINED_BENCH_TMPFS=0 benchmarks the plain directory.
func mustTempDir(b *testing.B) string {
	dir, err := os.MkdirTemp("/tmp", "machined-bench-")
	if err != nil {
		b.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	if os.Getenv("MACHINED_BENCH_TMPFS") != "0" {
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755,size=256m"); err != nil {
			b.Fatalf("mount tmpfs: %v", err)
		}
		b.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH); os.Remove(dir) })
	}
	return dir
}

func startBench(b *testing.B, d *daemon) {
	lf, _ := os.Create(d.dir + "/daemon.log")
	d.log = lf
	d.cmd = exec.Command(daemonBin, d.args...)
	d.cmd.Stdout, d.cmd.Stderr = lf, lf
	d.cmd.Env = os.Environ()
	if p := os.Getenv("MACHINED_BENCH_PROFILE"); p != "" {
		d.cmd.Env = append(d.cmd.Env, "MACHINED_CPUPROFILE="+p)
	}
	if p := os.Getenv("MACHINED_BENCH_GOMAXPROCS"); p != "" {
		d.cmd.Env = append(d.cmd.Env, "GOMAXPROCS="+p)
	}
	if err := d.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		if c, err := client.Dial(context.Background(), d.sock()); err == nil {
			c.Close()
			return
		}
		sleepMs(10)
	}
	b.Fatal("daemon did not start")
}

// leaderFarm starts n leader processes from one shell, cheaply.
type leaderFarm struct {
	cmd  *exec.Cmd
	pids []int
}

func startFarm(b testing.TB, n int) *leaderFarm {
	b.Helper()
	cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf(`i=0; while [ $i -lt %d ]; do sleep 100000 & echo $!; i=$((i+1)); done; wait`, n))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	f := &leaderFarm{cmd: cmd}
	sc := bufio.NewScanner(out)
	for len(f.pids) < n && sc.Scan() {
		pid, _ := strconv.Atoi(strings.TrimSpace(sc.Text()))
		f.pids = append(f.pids, pid)
	}
	b.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	return f
}

func registerFarm(b *testing.B, d *daemon, f *leaderFarm) {
	b.Helper()
	c, err := client.Dial(context.Background(), d.sock())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for i, pid := range f.pids {
		if err := c.Register(context.Background(), client.RegisterRequest{Name: fmt.Sprintf("m%d", i), Class: client.ClassContainer, LeaderPID: pid}); err != nil {
			b.Fatalf("register %d: %v", i, err)
		}
	}
}

func rssKiB(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			n, _ := strconv.Atoi(strings.Fields(line)[1])
			return n
		}
	}
	return 0
}

// Register+Unregister pairs on one connection, through the project's client.
func BenchmarkVarlinkRegisterUnregister(b *testing.B) {
	d := benchDaemon(b)
	f := startFarm(b, 1)
	c, err := client.Dial(context.Background(), d.sock())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	reg := client.RegisterRequest{Name: "bench", Class: client.ClassContainer, LeaderPID: f.pids[0]}
	b.ResetTimer()
	for b.Loop() {
		if err := c.Register(context.Background(), reg); err != nil {
			b.Fatal(err)
		}
		if err := c.Unregister(context.Background(), client.ByName("bench")); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}

func benchList(b *testing.B, n int) {
	d := benchDaemon(b)
	f := startFarm(b, n)
	registerFarm(b, d, f)
	c, err := client.Dial(context.Background(), d.sock())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ResetTimer()
	for b.Loop() {
		got := 0
		for _, err := range c.List(context.Background(), "") {
			if err != nil {
				b.Fatal(err)
			}
			got++
		}
		if got != n+1 {
			b.Fatalf("listed %d, want %d", got, n+1)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(rssKiB(d.pid()))/1024, "daemon-RSS-MiB")
}

func BenchmarkVarlinkList500(b *testing.B)   { benchList(b, 500) }
func BenchmarkVarlinkList10000(b *testing.B) { benchList(b, 10000) }

// Daemon RSS when idle (only .host).
func BenchmarkIdleRSS(b *testing.B) {
	d := benchDaemon(b)
	for b.Loop() {
		sleepMs(1)
	}
	b.ReportMetric(float64(rssKiB(d.pid()))/1024, "daemon-RSS-MiB")
}

// leanConn is a minimal Varlink client on a blocking socket: plain read and write
// syscalls, no netpoller, no JSON decoding of replies. It measures the daemon's
// side of a call; the project's client (client/, on varlink/go) adds its own
// cost on top, and the side-by-side harness gives every daemon this same client.
type leanConn struct {
	fd    int
	buf   []byte // buf[start:] is received and not yet returned
	start int
}

func dialLean(b *testing.B, path string) *leanConn {
	b.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(fd) })
	return &leanConn{fd: fd, buf: make([]byte, 0, 1<<20)}
}

func (c *leanConn) send(b *testing.B, msg []byte) {
	for len(msg) > 0 {
		n, err := unix.Write(c.fd, msg)
		if err != nil {
			b.Fatal(err)
		}
		msg = msg[n:]
	}
}

// next returns the next message without its NUL, valid until the next call.
func (c *leanConn) next(b *testing.B) []byte {
	scanned := c.start
	for {
		if i := bytes.IndexByte(c.buf[scanned:], 0); i >= 0 {
			msg := c.buf[c.start : scanned+i]
			c.start = scanned + i + 1
			return msg
		}
		scanned = len(c.buf)
		if c.start > 0 { // keep the partial message, drop what was returned
			n := copy(c.buf, c.buf[c.start:])
			scanned -= c.start
			c.buf, c.start = c.buf[:n], 0
		}
		if len(c.buf) == cap(c.buf) {
			c.buf = append(c.buf, 0)[:len(c.buf)]
		}
		n, err := unix.Read(c.fd, c.buf[len(c.buf):cap(c.buf)])
		if err != nil || n == 0 {
			b.Fatalf("read: %v (%d bytes)", err, n)
		}
		c.buf = c.buf[:len(c.buf)+n]
	}
}

// call sends one request and fails the benchmark on an error reply.
func (c *leanConn) call(b *testing.B, req []byte) []byte {
	c.send(b, req)
	r := c.next(b)
	if bytes.Contains(r, []byte(`"error":`)) {
		b.Fatalf("error reply: %s", r)
	}
	return r
}

// benchListRaw measures List with the lean client: one request, then replies
// up to the one without "continues", each checked for a name.
func benchListRaw(b *testing.B, n int) {
	d := benchDaemon(b)
	f := startFarm(b, n)
	registerFarm(b, d, f)
	c := dialLean(b, d.sock())
	req := []byte(`{"method":"io.systemd.Machine.List","parameters":{},"more":true}` + "\x00")
	b.ResetTimer()
	for b.Loop() {
		c.send(b, req)
		got := 0
		for {
			m := c.next(b)
			if !bytes.HasPrefix(m, []byte(`{"parameters":{"name":"`)) {
				b.Fatalf("unexpected reply %.200s", m)
			}
			got++
			if !bytes.HasSuffix(m, []byte(`"continues":true}`)) {
				break
			}
		}
		if got != n+1 {
			b.Fatalf("listed %d, want %d", got, n+1)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(rssKiB(d.pid()))/1024, "daemon-RSS-MiB")
}

func BenchmarkVarlinkList500Raw(b *testing.B)   { benchListRaw(b, 500) }
func BenchmarkVarlinkList10000Raw(b *testing.B) { benchListRaw(b, 10000) }

// Register+Unregister pairs with a lean client that writes both calls and
// reads both replies per pair: the daemon's side of the cost.
func BenchmarkVarlinkRegisterUnregisterRaw(b *testing.B) {
	d := benchDaemon(b)
	f := startFarm(b, 1)
	c := dialLean(b, d.sock())
	reg := []byte(fmt.Sprintf(`{"method":"io.systemd.Machine.Register","parameters":{"name":"bench","class":"container","leader":%d}}`+"\x00", f.pids[0]))
	unreg := []byte(`{"method":"io.systemd.Machine.Unregister","parameters":{"name":"bench"}}` + "\x00")
	b.ResetTimer()
	for b.Loop() {
		c.call(b, reg)
		c.call(b, unreg)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}

// userNSFarm starts n leaders, leader i in its own user namespace mapping
// 0..65535 to (i+16)*65536.., and registers them as machine u<i>.
func userNSFarm(b *testing.B, d *daemon, n int) {
	b.Helper()
	needUserNS(b)
	c := dialLean(b, d.sock())
	for i := 0; i < n; i++ {
		m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: (i + 16) << 16, Size: 65536}}
		cmd := exec.Command("sleep", "100000")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: m}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		c.call(b, []byte(fmt.Sprintf(`{"method":"io.systemd.Machine.Register","parameters":{"name":"u%d","class":"container","leader":%d}}`+"\x00", i, cmd.Process.Pid)))
	}
}

// userRecordRequests asks for uid 1000 of each of userNSFarm's n machines, by
// uid or by name.
func userRecordRequests(n int, byName bool) [][]byte {
	reqs := make([][]byte, n)
	for i := range reqs {
		key := fmt.Sprintf(`"uid":%d`, (i+16)<<16+1000)
		if byName {
			key = fmt.Sprintf(`"userName":"vu-u%d-1000"`, i)
		}
		reqs[i] = []byte(`{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{` + key + `,"service":"io.systemd.Machine"}}` + "\x00")
	}
	return reqs
}

// benchUserRecord: GetUserRecord on one persistent connection, cycling through
// the machines' users, by uid or by name.
func benchUserRecord(b *testing.B, n int, byName bool) {
	d := benchDaemon(b)
	userNSFarm(b, d, n)
	c := dialLean(b, d.userdbSock())
	reqs := userRecordRequests(n, byName)
	i := 0
	b.ResetTimer()
	for b.Loop() {
		r := c.call(b, reqs[i])
		if !bytes.Contains(r, []byte(`"record":{"userName":"vu-u`)) {
			b.Fatalf("unexpected reply %s", r)
		}
		i = (i + 1) % n
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

func BenchmarkUserRecordByUID2(b *testing.B)    { benchUserRecord(b, 2, false) }
func BenchmarkUserRecordByUID500(b *testing.B)  { benchUserRecord(b, 500, false) }
func BenchmarkUserRecordByName2(b *testing.B)   { benchUserRecord(b, 2, true) }
func BenchmarkUserRecordByName500(b *testing.B) { benchUserRecord(b, 500, true) }

// benchUserRecordNewConn: one connection per lookup, as glibc's nss-systemd
// makes them (connect, one GetUserRecord, close).
func benchUserRecordNewConn(b *testing.B, n int, byName bool) {
	d := benchDaemon(b)
	userNSFarm(b, d, n)
	addr := &unix.SockaddrUnix{Name: d.userdbSock()}
	reqs := userRecordRequests(n, byName)
	buf := make([]byte, 64<<10)
	i := 0
	b.ResetTimer()
	for b.Loop() {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := unix.Connect(fd, addr); err != nil {
			b.Fatal(err)
		}
		if _, err := unix.Write(fd, reqs[i]); err != nil {
			b.Fatal(err)
		}
		got := 0
		for got == 0 || buf[got-1] != 0 {
			k, err := unix.Read(fd, buf[got:])
			if err != nil || k == 0 {
				b.Fatalf("read after %d bytes: %v", got, err)
			}
			got += k
		}
		unix.Close(fd)
		if !bytes.Contains(buf[:got], []byte(`"record":{"userName":"vu-u`)) {
			b.Fatalf("unexpected reply %s", buf[:got])
		}
		i = (i + 1) % n
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

func BenchmarkUserRecordNewConnByUID2(b *testing.B)  { benchUserRecordNewConn(b, 2, false) }
func BenchmarkUserRecordNewConnByName2(b *testing.B) { benchUserRecordNewConn(b, 2, true) }
