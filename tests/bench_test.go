package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	vl "github.com/varlink/go/varlink"
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
		if c, err := vl.NewConnection(context.Background(), "unix:"+d.sock()); err == nil {
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

func startFarm(b *testing.B, n int) *leaderFarm {
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
	c, err := vl.NewConnection(context.Background(), "unix:"+d.sock())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for i, pid := range f.pids {
		var out struct{}
		if err := c.Call(context.Background(), "io.systemd.Machine.Register", map[string]any{"name": fmt.Sprintf("m%d", i), "class": "container", "leader": pid}, &out); err != nil {
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

// Register+Unregister pairs on one connection.
func BenchmarkVarlinkRegisterUnregister(b *testing.B) {
	d := benchDaemon(b)
	f := startFarm(b, 1)
	c, err := vl.NewConnection(context.Background(), "unix:"+d.sock())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	reg := map[string]any{"name": "bench", "class": "container", "leader": f.pids[0]}
	unreg := map[string]any{"name": "bench"}
	var out struct{}
	b.ResetTimer()
	for b.Loop() {
		if err := c.Call(context.Background(), "io.systemd.Machine.Register", reg, &out); err != nil {
			b.Fatal(err)
		}
		if err := c.Call(context.Background(), "io.systemd.Machine.Unregister", unreg, &out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}

func benchList(b *testing.B, n int) {
	d := benchDaemon(b)
	f := startFarm(b, n)
	registerFarm(b, d, f)
	c, err := vl.NewConnection(context.Background(), "unix:"+d.sock())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ResetTimer()
	for b.Loop() {
		recv, err := c.Send(context.Background(), "io.systemd.Machine.List", struct{}{}, vl.More)
		if err != nil {
			b.Fatal(err)
		}
		got := 0
		for {
			var m struct {
				Name string `json:"name"`
			}
			flags, err := recv(context.Background(), &m)
			if err != nil {
				b.Fatal(err)
			}
			got++
			if flags&vl.Continues == 0 {
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

// benchListRaw measures List with a lean client: one request, replies read in
// bulk and each decoded for its name only. It shows the daemon's side of the
// latency; the varlink/go client adds its own per-message cost on top.
func benchListRaw(b *testing.B, n int) {
	d := benchDaemon(b)
	f := startFarm(b, n)
	registerFarm(b, d, f)
	c, err := net.Dial("unix", d.sock())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte(`{"method":"io.systemd.Machine.List","parameters":{},"more":true}` + "\x00")
	buf := make([]byte, 0, 1<<20)
	chunk := make([]byte, 256<<10)
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		got, done := 0, false
		buf = buf[:0]
		for !done {
			k, err := c.Read(chunk)
			if err != nil {
				b.Fatal(err)
			}
			buf = append(buf, chunk[:k]...)
			for {
				i := bytes.IndexByte(buf, 0)
				if i < 0 {
					break
				}
				var m struct {
					Parameters struct {
						Name string `json:"name"`
					} `json:"parameters"`
					Continues bool `json:"continues"`
				}
				if err := json.Unmarshal(buf[:i], &m); err != nil {
					b.Fatal(err)
				}
				got++
				done = !m.Continues
				buf = buf[i+1:]
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
	c, err := net.Dial("unix", d.sock())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	reg := []byte(fmt.Sprintf(`{"method":"io.systemd.Machine.Register","parameters":{"name":"bench","class":"container","leader":%d}}`+"\x00", f.pids[0]))
	unreg := []byte(`{"method":"io.systemd.Machine.Unregister","parameters":{"name":"bench"}}` + "\x00")
	buf := make([]byte, 4096)
	readReply := func() {
		got := 0
		for {
			n, err := c.Read(buf[got:])
			if err != nil {
				b.Fatal(err)
			}
			got += n
			if i := bytes.IndexByte(buf[:got], 0); i >= 0 {
				if bytes.Contains(buf[:i], []byte(`"error"`)) {
					b.Fatalf("error reply: %s", buf[:i])
				}
				return
			}
		}
	}
	b.ResetTimer()
	for b.Loop() {
		c.Write(reg)
		readReply()
		c.Write(unreg)
		readReply()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}
