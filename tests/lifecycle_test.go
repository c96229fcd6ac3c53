package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/machined-go/machined/client"
)

// Register, list and unregister with the real varlinkctl.
func TestRegisterListUnregister(t *testing.T) {
	needRoot(t)
	d := startDaemon(t)
	l := spawnLeader(t)
	params := fmt.Sprintf(`{"name":"web1","class":"container","service":"demo","leader":%d,"rootDirectory":"/","id":"112233445566778899aabbccddeeff01"}`, l.pid)
	if out, errOut, code := varlinkctl(t, "call", d.sock(), "io.systemd.Machine.Register", params); code != 0 {
		t.Fatalf("Register: exit %d: %s %s", code, out, errOut)
	}

	out, errOut, code := varlinkctl(t, "call", "--more", "-j", d.sock(), "io.systemd.Machine.List", "{}")
	if code != 0 {
		t.Fatalf("List --more: exit %d: %s", code, errOut)
	}
	seen := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(strings.ReplaceAll(out, "\x1e", "")), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("List output %q: %v", line, err)
		}
		seen[m["name"].(string)] = m
	}
	host, ok := seen[".host"]
	if !ok || host["class"] != "host" || host["unit"] != "-.slice" {
		t.Errorf(".host missing or wrong: %v", host)
	}
	web := seen["web1"]
	if web == nil {
		t.Fatalf("web1 not listed: %s", out)
	}
	if web["service"] != "demo" || web["class"] != "container" || web["id"] != "112233445566778899aabbccddeeff01" || web["rootDirectory"] != "/" {
		t.Errorf("web1 fields: %v", web)
	}
	if ld, _ := web["leader"].(map[string]any); ld == nil || int(ld["pid"].(float64)) != l.pid {
		t.Errorf("web1 leader: %v", web["leader"])
	}

	out, _, code = varlinkctl(t, "call", "-j", d.sock(), "io.systemd.Machine.List", `{"name":"web1"}`)
	if code != 0 || !strings.Contains(out, `"web1"`) {
		t.Errorf("List name: exit %d %s", code, out)
	}
	state, err := os.ReadFile(filepath.Join(d.stateDir(), "web1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NAME=web1\n", fmt.Sprintf("LEADER=%d\n", l.pid), "CLASS=container\n", "SERVICE=demo\n", "ID=112233445566778899aabbccddeeff01\n"} {
		if !strings.Contains(string(state), want) {
			t.Errorf("state file lacks %q:\n%s", want, state)
		}
	}

	if _, errOut, code := varlinkctl(t, "call", d.sock(), "io.systemd.Machine.Unregister", `{"name":"web1"}`); code != 0 {
		t.Fatalf("Unregister: %s", errOut)
	}
	_, errOut, code = varlinkctl(t, "call", d.sock(), "io.systemd.Machine.List", `{"name":"web1"}`)
	if code == 0 || !strings.Contains(errOut, "io.systemd.Machine.NoSuchMachine") {
		t.Errorf("after Unregister: exit %d %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(d.stateDir(), "web1")); !os.IsNotExist(err) {
		t.Errorf("state file still there: %v", err)
	}
	if l.cmd.ProcessState != nil {
		t.Error("Unregister must not stop the leader")
	}
}

// A machine goes away when its leader exits, without systemd.
func TestLeaderDeath(t *testing.T) {
	needRoot(t)
	d := startDaemon(t)
	l := spawnLeader(t)
	register(t, d, "dies", l.pid)
	if _, err := getOne(t, d, "dies"); err != nil {
		t.Fatal(err)
	}
	l.kill()
	eventually(t, "machine removed after leader exit", func() bool { return gone(t, d, "dies") })
	if _, err := os.Stat(filepath.Join(d.stateDir(), "dies")); !os.IsNotExist(err) {
		t.Errorf("state file survived the leader: %v", err)
	}
}

// Live machines come back after a restart or a SIGKILL; a dead leader's never does.
func TestRestartRestores(t *testing.T) {
	needRoot(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			d := startDaemon(t)
			live, dead := spawnLeader(t), spawnLeader(t)
			registerReq(t, d, client.RegisterRequest{Name: "live", LeaderPID: live.pid, Service: "svc", ID: "00112233445566778899aabbccddeeff", IfIndices: []int{1}})
			register(t, d, "dead", dead.pid)
			before, err := getOne(t, d, "live")
			if err != nil {
				t.Fatal(err)
			}

			d.stop(sig)
			dead.kill()
			d.start()

			after, err := getOne(t, d, "live")
			if err != nil {
				t.Fatalf("live machine lost: %v", err)
			}
			for _, k := range []struct {
				name          string
				before, after any
			}{
				{"id", before.ID, after.ID},
				{"service", before.Service, after.Service},
				{"leader", before.Leader, after.Leader},
				{"timestamp", before.Timestamp, after.Timestamp},
				{"class", before.Class, after.Class},
			} {
				if !reflect.DeepEqual(k.before, k.after) {
					t.Errorf("%s changed across restart: %+v -> %+v", k.name, k.before, k.after)
				}
			}
			if !gone(t, d, "dead") {
				t.Error("machine of a dead leader came back")
			}
			if _, err := os.Stat(filepath.Join(d.stateDir(), "dead")); !os.IsNotExist(err) {
				t.Errorf("dead machine's state file kept: %v", err)
			}
			// The restored machine is still watched.
			live.kill()
			eventually(t, "restored machine removed after leader exit", func() bool { return gone(t, d, "live") })
		})
	}
}

// A record whose LEADER_PIDFDID names another process is dropped.
func TestRecycledPIDFDID(t *testing.T) {
	needRoot(t)
	d := startDaemon(t)
	l := spawnLeader(t)
	register(t, d, "rec", l.pid)
	d.stop(syscall.SIGTERM)
	path := filepath.Join(d.stateDir(), "rec")
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "LEADER_PIDFDID=") {
		t.Skip("kernel without pidfs: no pidfd ids to compare")
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "LEADER_PIDFDID=") {
			line = "LEADER_PIDFDID=1"
		}
		out = append(out, line)
	}
	os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o644)
	d.start()
	if !gone(t, d, "rec") {
		t.Error("record with a foreign pidfd id was restored")
	}
}

func uptimeMicros(t *testing.T) uint64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	var up float64
	fmt.Sscanf(string(b), "%f", &up)
	return uint64(up*1e6) + 1_000_000
}

// A damaged or foreign state file is skipped, never a crash.
func TestDamagedStateFile(t *testing.T) {
	needRoot(t)
	d := startDaemon(t)
	l := spawnLeader(t)
	register(t, d, "good", l.pid)
	d.stop(syscall.SIGTERM)
	os.WriteFile(filepath.Join(d.stateDir(), "broken"), []byte("NAME=other\nLEADER=x\n"), 0o644)
	os.WriteFile(filepath.Join(d.stateDir(), "garbage"), []byte{0xff, 0, '\n', '='}, 0o644)
	d.start()
	if _, err := getOne(t, d, "good"); err != nil {
		t.Fatalf("good machine lost next to damaged files: %v", err)
	}
	if !gone(t, d, "broken") || !gone(t, d, "garbage") {
		t.Error("damaged records were loaded")
	}
}

// An upstream 252 state file (no pidfd id, C-escaped, unquoted NETIF) is adopted.
func TestUpstream252StateFile(t *testing.T) {
	needRoot(t)
	d := startDaemon(t)
	l := spawnLeader(t)
	d.stop(syscall.SIGTERM)
	file := func(name string, pid int, monotonic uint64) string {
		return fmt.Sprintf("# This is private data. Do not parse.\nNAME=%s\nSCOPE=peer-old.scope\nSERVICE=svc-ns\nROOT=/\nID=112233445566778899aabbccddeeff01\nLEADER=%d\nCLASS=container\nREALTIME=1795528692123854\nMONOTONIC=%d\nNETIF=7 9\n", name, pid, monotonic)
	}
	// Registered now: the leader is older than the machine.
	os.WriteFile(filepath.Join(d.stateDir(), "old252"), []byte(file("old252", l.pid, uptimeMicros(t))), 0o644)
	// Registered at boot: a leader started later than that is a recycled PID.
	l2 := spawnLeader(t)
	os.WriteFile(filepath.Join(d.stateDir(), "recycled"), []byte(file("recycled", l2.pid, 1)), 0o644)
	d.start()
	if !gone(t, d, "recycled") {
		t.Error("a 252 record whose PID was recycled came back")
	}
	m, err := getOne(t, d, "old252")
	if err != nil {
		t.Fatalf("252 record not restored: %v", err)
	}
	if m.Unit != "peer-old.scope" || m.Service != "svc-ns" {
		t.Errorf("fields: %+v", m)
	}
}
