package tests

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func (d *daemon) hookSock() string {
	return filepath.Join(d.dir, "systemd", "resolve.hook", "io.systemd.Machine")
}

// netnsLeader starts a leader in a network namespace of its own whose
// loopback carries addr4 and addr6 besides 127.0.0.1 and ::1.
func netnsLeader(t *testing.T, addr4, addr6 string) int {
	t.Helper()
	pid := startAs(t, nil, "exec unshare -n sh -c 'ip link set lo up && ip addr add "+addr4+" dev lo && ip addr add "+addr6+" dev lo nodad && exec sleep 100000'")
	waitExec(t, pid, "sleep")
	return pid
}

type hookAnswer struct {
	RR struct {
		Key struct {
			Class, Type int
			Name        string
		}
		Address []int
	}
	Raw string
}

type hookReply struct {
	RCode  *int
	Answer []hookAnswer
}

// resolveRecord calls the hook with varlinkctl as cred.
func resolveRecord(t *testing.T, d *daemon, cred *syscall.Credential, question string) (hookReply, string, int) {
	t.Helper()
	out, errOut, code := varlinkctlAs(t, cred, "call", "-j", d.hookSock(), "io.systemd.Resolve.Hook.ResolveRecord", `{"question":`+question+`}`)
	var r hookReply
	if code == 0 {
		if err := json.Unmarshal([]byte(strings.Trim(out, "\x1e\n")), &r); err != nil {
			t.Fatalf("reply %q: %v", out, err)
		}
	}
	return r, errOut, code
}

// addressesOf lists an answer's addresses per name, as dotted or colon text.
func addressesOf(t *testing.T, r hookReply) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, a := range r.Answer {
		raw, err := base64.StdEncoding.DecodeString(a.Raw)
		if err != nil || len(raw) < len(a.RR.Address) {
			t.Fatalf("raw %q: %v", a.Raw, err)
		}
		// The wire form ends with the same address the decoded form has.
		tail := raw[len(raw)-len(a.RR.Address):]
		parts := make([]string, len(a.RR.Address))
		for i, b := range a.RR.Address {
			if tail[i] != byte(b) {
				t.Errorf("raw and rr disagree for %s: %v vs %v", a.RR.Key.Name, tail, a.RR.Address)
			}
			parts[i] = strconv.Itoa(b)
		}
		sep := "."
		if len(parts) == 16 {
			sep = ":"
		}
		out[a.RR.Key.Name] = append(out[a.RR.Key.Name], strings.Join(parts, sep))
	}
	return out
}

// The resolver hook answers a machine's name with that machine's own
// addresses, no loopback ones, each machine its own even when one question
// names two of them; a name below a machine's is NXDOMAIN, another name is
// left to the resolver, and a machine without a network of its own has the
// name but no address records. Any user may ask, as any user may resolve.
func TestResolveHookRecords(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "--units", "none")
	for name, pid := range map[string]int{
		"alpha": netnsLeader(t, "10.213.9.2/24", "fd42:9::2/64"),
		"beta":  netnsLeader(t, "10.213.10.3/24", "fd42:10::3/64"),
		"flat":  spawnLeader(t).pid,
	} {
		register(t, d, name, pid)
	}
	both := `[{"key":{"type":1,"name":"alpha"}},{"key":{"type":28,"name":"alpha"}},{"key":{"class":1,"type":1,"name":"beta"}},{"key":{"type":28,"name":"beta."}}]`
	for _, cred := range []*syscall.Credential{nil, {Uid: 65534, Gid: 65534}} {
		r, errOut, code := resolveRecord(t, d, cred, both)
		if code != 0 || r.RCode == nil || *r.RCode != 0 {
			t.Fatalf("ResolveRecord alpha+beta as %v: %d %s %+v", cred, code, errOut, r)
		}
		got := addressesOf(t, r)
		want := map[string][]string{
			"alpha": {"10.213.9.2", "253:66:0:9:0:0:0:0:0:0:0:0:0:0:0:2"},
			"beta":  {"10.213.10.3", "253:66:0:16:0:0:0:0:0:0:0:0:0:0:0:3"},
		}
		for name, addrs := range want {
			if strings.Join(got[name], " ") != strings.Join(addrs, " ") {
				t.Errorf("%s resolves to %v, want %v (its own, no loopback)", name, got[name], addrs)
			}
		}
	}
	for _, a := range mustResolve(t, d, `[{"key":{"type":1,"name":"alpha"}}]`).Answer {
		if a.RR.Key.Type != 1 || a.RR.Key.Class != 1 {
			t.Errorf("an A question answered with %+v", a.RR.Key)
		}
	}
	if r := mustResolve(t, d, `[{"key":{"type":1,"name":"flat"}},{"key":{"type":16,"name":"alpha"}}]`); r.RCode == nil || *r.RCode != 0 || len(r.Answer) != 0 {
		t.Errorf("a machine on the host's network, a TXT question: %+v, want rcode 0 and no records", r)
	}
	if r := mustResolve(t, d, `[{"key":{"type":1,"name":"www.alpha"}}]`); r.RCode == nil || *r.RCode != 3 {
		t.Errorf("a name below a machine's: %+v, want rcode 3", r)
	}
	if r := mustResolve(t, d, `[{"key":{"type":1,"name":"example.org"}},{"key":{"type":1,"name":".host"}}]`); r.RCode != nil || len(r.Answer) != 0 {
		t.Errorf("names that are no machine's: %+v, want an empty reply", r)
	}
}

func mustResolve(t *testing.T, d *daemon, question string) hookReply {
	t.Helper()
	r, errOut, code := resolveRecord(t, d, nil, question)
	if code != 0 {
		t.Fatalf("ResolveRecord %s: %d %s", question, code, errOut)
	}
	return r
}

// Every rule on the question is checked: at least one key and at most
// MaxQuestion (64), each with a key whose type and class fit 16 bits, a type
// and a name, and nothing else.
func TestResolveHookRefusesBadQuestions(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "--units", "none")
	many := make([]string, 65)
	for i := range many {
		many[i] = `{"key":{"type":1,"name":"n` + strconv.Itoa(i) + `"}}`
	}
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: d.hookSock(), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, q := range []string{
		`[]`,
		`null`,
		`"alpha"`,
		`[{}]`,
		`[{"key":null}]`,
		`[{"key":{"name":"alpha"}}]`,
		`[{"key":{"type":1}}]`,
		`[{"key":{"type":65536,"name":"alpha"}}]`,
		`[{"key":{"type":-1,"name":"alpha"}}]`,
		`[{"key":{"class":65536,"type":1,"name":"alpha"}}]`,
		`[{"key":{"type":1,"name":"alpha","ttl":3}}]`,
		`[{"key":{"type":1,"name":"alpha"},"extra":1}]`,
		"[" + strings.Join(many, ",") + "]",
	} {
		if _, err := c.Write([]byte(`{"method":"io.systemd.Resolve.Hook.ResolveRecord","parameters":{"question":` + q + `}}` + "\x00")); err != nil {
			t.Fatal(err)
		}
		r, err := readReply(t, c)
		if err != nil {
			t.Fatal(err)
		}
		params, _ := r["parameters"].(map[string]any)
		if r["error"] != "org.varlink.service.InvalidParameter" || params["parameter"] != "question" {
			t.Errorf("question %.60s: %v, want InvalidParameter question", q, r)
		}
	}
	if _, errOut, code := resolveRecord(t, d, nil, "["+strings.Join(many[:64], ",")+"]"); code != 0 {
		t.Errorf("64 keys: %d %s", code, errOut)
	}
}

// The hook's interface is the one resolved expects, QueryFilter lists the
// machines' names (not .host), and with 'more' a new filter follows each
// registration and removal.
func TestResolveHookFilter(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "--units", "none")
	out, errOut, code := varlinkctl(t, "introspect", d.hookSock(), "io.systemd.Resolve.Hook")
	for _, want := range []string{"interface io.systemd.Resolve.Hook", "method QueryFilter(", "filterDomains: ?[]string", "method ResolveRecord(", "question: []Question", "rcode: ?int", "answer: ?[]Answer", "type ResourceKey(", "raw: string"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("introspection lacks %q: %d %s", want, code, errOut)
		}
	}
	if out, _, _ := varlinkctl(t, "info", d.hookSock()); !strings.Contains(out, "io.systemd.Resolve.Hook") {
		t.Errorf("GetInfo: %s", out)
	}
	register(t, d, "one", spawnLeader(t).pid)
	out, errOut, code = varlinkctl(t, "call", "-j", d.hookSock(), "io.systemd.Resolve.Hook.QueryFilter", "{}")
	if code != 0 || strings.TrimSpace(strings.Trim(out, "\x1e")) != `{"filterDomains":["one"]}` {
		t.Errorf("QueryFilter: %d %q %s", code, out, errOut)
	}

	cmd := exec.Command(varlinkctlPath(t), "call", "--more", "-j", d.hookSock(), "io.systemd.Resolve.Hook.QueryFilter", "{}")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	next := func() string {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("the filter stream ended: %v", lines.Err())
		}
		return strings.Trim(lines.Text(), "\x1e")
	}
	if got := next(); got != `{"filterDomains":["one"]}` {
		t.Errorf("first filter %s", got)
	}
	two := spawnLeader(t)
	register(t, d, "two", two.pid)
	if got := next(); got != `{"filterDomains":["one","two"]}` {
		t.Errorf("after a registration: %s", got)
	}
	unregister(t, d, "one")
	if got := next(); got != `{"filterDomains":["two"]}` {
		t.Errorf("after an unregistration: %s", got)
	}
	two.kill()
	if got := next(); got != `{"filterDomains":[]}` {
		t.Errorf("after the last leader exited: %s", got)
	}
}
