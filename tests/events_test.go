package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/machined-go/machined/client"
	"github.com/machined-go/machined/internal/dialas"
)

const eventsSubscribe = "io.github.machinedgo.MachineEvents.Subscribe"

// eventStream is a running `varlinkctl call --more -j … Subscribe`.
type eventStream struct {
	t    *testing.T
	cmd  *exec.Cmd
	recs chan map[string]any
}

func subscribeVarlinkctl(t *testing.T, d *daemon, cred *syscall.Credential, params string) *eventStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, varlinkctlPath(t), "call", "--more", "-j", d.sock(), eventsSubscribe, params)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &eventStream{t: t, cmd: cmd, recs: make(chan map[string]any, 1024)}
	go func() {
		defer close(s.recs)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := strings.TrimLeft(sc.Text(), "\x1e")
			if line == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				m = map[string]any{"unparsed": line}
			}
			s.recs <- m
		}
	}()
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("varlinkctl stderr: %s", stderr.String())
		}
	})
	return s
}

// next returns the next reply; the wait is a fail-safe, not a measurement.
func (s *eventStream) next() map[string]any {
	s.t.Helper()
	select {
	case m, ok := <-s.recs:
		if !ok {
			s.t.Fatal("the stream ended")
		}
		return m
	case <-time.After(30 * time.Second):
		s.t.Fatal("no event")
	}
	return nil
}

// expect checks the next reply's event, machine name and reason ("" absent).
func (s *eventStream) expect(event, name, reason string) map[string]any {
	s.t.Helper()
	m := s.next()
	mach, _ := m["machine"].(map[string]any)
	gotName, _ := mach["name"].(string)
	gotReason, _ := m["reason"].(string)
	if m["event"] != event || gotName != name || gotReason != reason {
		s.t.Fatalf("got %v, want %s %s %s", m, event, name, reason)
	}
	return mach
}

// The real varlinkctl prints the snapshot, then live events while machines come
// and go through Varlink, through D-Bus (busctl, machinectl of systemd 252) and
// through their leaders' death.
func TestEventsVarlinkctl(t *testing.T) {
	d, bus := startBusDaemon(t)
	pre := spawnLeader(t)
	register(t, d, "ev-pre", pre.pid)
	s := subscribeVarlinkctl(t, d, nil, "{}")
	s.expect("existing", ".host", "")
	if m := s.expect("existing", "ev-pre", ""); m["state"] != "running" || m["leader"] == nil {
		t.Errorf("snapshot record %v", m)
	}
	s.expect("snapshotComplete", "", "")

	vm := spawnLeader(t)
	registerReq(t, d, client.RegisterRequest{Name: "ev-vl", LeaderPID: vm.pid, Class: client.ClassVM})
	if m := s.expect("registered", "ev-vl", ""); m["class"] != "vm" || int(m["leader"].(map[string]any)["pid"].(float64)) != vm.pid {
		t.Errorf("registered record %v", m)
	}
	db := spawnLeader(t)
	if _, errOut, code := busctl(t, bus, nil, "call", m1Dest, m1Path, m1Manager, "RegisterMachine", "sayssus", "ev-db", "0", "svc", "container", fmt.Sprint(db.pid), ""); code != 0 {
		t.Fatalf("RegisterMachine: %s", errOut)
	}
	s.expect("registered", "ev-db", "")
	if _, errOut, code := inSystemdNS(t, d, bus, -1, "machinectl", "--no-pager", "terminate", "ev-db"); code != 0 {
		t.Fatalf("machinectl terminate: %s", errOut)
	}
	if m := s.expect("stateChanged", "ev-db", ""); m["state"] != "closing" {
		t.Errorf("stateChanged record %v", m)
	}
	s.expect("removed", "ev-db", "terminated")
	unregister(t, d, "ev-pre")
	s.expect("removed", "ev-pre", "unregistered")
	vm.kill()
	s.expect("removed", "ev-vl", "leaderExited")
}

// Filters: a name, a class, kinds; the snapshot is filtered by name and class
// only. Bad filters and a call without 'more' are refused.
func TestEventsFilters(t *testing.T) {
	needRoot(t)
	d := startDaemon(t)
	a, b := spawnLeader(t), spawnLeader(t)
	register(t, d, "flt-a", a.pid)
	byName := subscribeVarlinkctl(t, d, nil, `{"name":"flt-b"}`)
	byClass := subscribeVarlinkctl(t, d, nil, `{"class":"vm","kinds":["removed"]}`)
	byName.expect("snapshotComplete", "", "")
	byClass.expect("snapshotComplete", "", "")
	registerReq(t, d, client.RegisterRequest{Name: "flt-b", LeaderPID: b.pid, Class: client.ClassVM})
	byName.expect("registered", "flt-b", "")
	unregister(t, d, "flt-a")
	unregister(t, d, "flt-b")
	byName.expect("removed", "flt-b", "unregistered")
	byClass.expect("removed", "flt-b", "unregistered")

	for params, bad := range map[string]string{
		`{"name":"no/such"}`:                  "name",
		`{"class":"toaster"}`:                 "class",
		`{"kinds":["registered","exploded"]}`: "kinds",
		`{"kinds":["existing"]}`:              "kinds",
		`{"kinds":["removed","removed","removed","removed","removed","removed","removed","removed","removed"]}`: "kinds",
		`{"extra":1}`: "extra",
	} {
		out, errOut, code := varlinkctl(t, "call", "--more", d.sock(), eventsSubscribe, params)
		if code == 0 || !strings.Contains(errOut, "InvalidParameter") || !strings.Contains(out, `"`+bad+`"`) {
			t.Errorf("%s: exit %d %s %s", params, code, out, errOut)
		}
	}
	if _, errOut, code := varlinkctl(t, "call", d.sock(), eventsSubscribe, "{}"); code == 0 || !strings.Contains(errOut, "ExpectedMore") {
		t.Errorf("without more: exit %d %s", code, errOut)
	}
	if _, errOut, code := varlinkctl(t, "call", d.sock(), "io.github.machinedgo.MachineEvents.Watch", "{}"); code == 0 || !strings.Contains(errOut, "MethodNotFound") {
		t.Errorf("unknown method: exit %d %s", code, errOut)
	}
}

// varlinkctl 257 accepts the interface's name and its description.
func TestEventsIntrospect(t *testing.T) {
	d := startDaemon(t, "--units", "none")
	out, errOut, code := varlinkctl(t, "info", d.sock())
	if code != 0 || !strings.Contains(out, "io.github.machinedgo.MachineEvents") {
		t.Errorf("info: %s %s", out, errOut)
	}
	out, errOut, code = varlinkctl(t, "introspect", d.sock(), "io.github.machinedgo.MachineEvents")
	if code != 0 {
		t.Fatalf("introspect: %s", errOut)
	}
	for _, want := range []string{"method Subscribe(", "kinds: ?[]EventKind", "error BacklogExceeded", "leaderExited"} {
		if !strings.Contains(out, want) {
			t.Errorf("introspection lacks %q", want)
		}
	}
}

// As nobody, a subscriber sees root's machines exactly as List shows them to
// nobody: no leader, supervisor, paths, keys or UID, in the snapshot and in the
// events.
func TestEventsAsNobody(t *testing.T) {
	needRoot(t)
	d := startDaemon(t)
	l := spawnLeader(t)
	secret := client.RegisterRequest{RootDirectory: "/srv/secret", SSHAddress: "10.0.0.1", SSHPrivateKeyPath: "/root/key", Service: "svc"}
	secret.Name, secret.LeaderPID = "rootbox", l.pid
	registerReq(t, d, secret)
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	s := subscribeVarlinkctl(t, d, nobody, "{}")
	s.expect("existing", ".host", "")
	snap := s.expect("existing", "rootbox", "")
	s.expect("snapshotComplete", "", "")

	out, errOut, code := varlinkctlAs(t, nobody, "call", "-j", d.sock(), "io.systemd.Machine.List", `{"name":"rootbox"}`)
	if code != 0 {
		t.Fatalf("List as nobody: %s", errOut)
	}
	var list map[string]any
	if err := json.Unmarshal([]byte(strings.TrimLeft(strings.TrimSpace(out), "\x1e")), &list); err != nil {
		t.Fatal(err)
	}
	delete(snap, "state")
	if a, b := fmt.Sprint(snap), fmt.Sprint(list); a != b {
		t.Errorf("snapshot record as nobody\n%s\nList as nobody\n%s", a, b)
	}
	l2 := spawnLeader(t)
	secret.Name, secret.LeaderPID = "rootbox2", l2.pid
	registerReq(t, d, secret)
	ev := s.expect("registered", "rootbox2", "")
	for _, hidden := range []string{"leader", "supervisor", "rootDirectory", "sshAddress", "sshPrivateKeyPath", "UID"} {
		if _, ok := ev[hidden]; ok {
			t.Errorf("nobody sees %s: %v", hidden, ev)
		}
		if _, ok := snap[hidden]; ok {
			t.Errorf("nobody sees %s in the snapshot: %v", hidden, snap)
		}
	}
	if ev["service"] != "svc" || ev["class"] != "container" {
		t.Errorf("restricted record lacks what List shows: %v", ev)
	}
}

// rawSubscriber is a Go client on a plain socket: it reads replies as they
// come (or, stalled, not at all until told).
type rawSubscriber struct {
	c  *net.UnixConn
	br *bufio.Reader
}

func rawSubscribe(t *testing.T, d *daemon) *rawSubscriber {
	t.Helper()
	c := rawConn(t, d)
	if _, err := c.Write([]byte(`{"method":"` + eventsSubscribe + `","parameters":{},"more":true}` + "\x00")); err != nil {
		t.Fatal(err)
	}
	return &rawSubscriber{c: c, br: bufio.NewReaderSize(c, 64<<10)}
}

type wireReply struct {
	Parameters struct {
		Event   string `json:"event"`
		Machine struct {
			Name string `json:"name"`
		} `json:"machine"`
		Reason string `json:"reason"`
		Limit  int    `json:"limit"`
	} `json:"parameters"`
	Continues bool   `json:"continues"`
	Error     string `json:"error"`
}

func (r *rawSubscriber) read() (wireReply, error) {
	var w wireReply
	r.c.SetReadDeadline(time.Now().Add(60 * time.Second)) // a fail-safe
	msg, err := r.br.ReadBytes(0)
	if err != nil {
		return w, err
	}
	err = json.Unmarshal(msg[:len(msg)-1], &w)
	return w, err
}

// A storm of 10,000 registrations (register and unregister, on 8 connections)
// with 8 subscribers, one of which never reads: the stalled one is answered
// BacklogExceeded and its stream ends, and each other one sees every event, in
// the order the registry made them (all the same order, and per name the
// order each storm connection produced), none lost or repeated.
func TestEventsStorm(t *testing.T) {
	needRoot(t)
	d := startDaemon(t)
	const conns, perConn, namesPerConn = 8, 1250, 25
	stalled := rawSubscribe(t, d)
	readers := make([]*rawSubscriber, 7)
	for i := range readers {
		readers[i] = rawSubscribe(t, d)
	}
	type seen struct{ kind, name string }
	got := make([][]seen, len(readers))
	var rwg sync.WaitGroup
	errs := make(chan error, len(readers)+conns)
	const total = 2 * conns * perConn
	for i, r := range readers {
		for {
			w, err := r.read()
			if err != nil {
				t.Fatal(err)
			}
			if w.Parameters.Event == "snapshotComplete" {
				break
			}
		}
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for len(got[i]) < total {
				w, err := r.read()
				if err != nil || w.Error != "" {
					errs <- fmt.Errorf("reader %d after %d events: %v %s", i, len(got[i]), err, w.Error)
					return
				}
				got[i] = append(got[i], seen{w.Parameters.Event, w.Parameters.Machine.Name})
			}
		}()
	}

	var swg sync.WaitGroup
	for g := range conns {
		swg.Add(1)
		go func() {
			defer swg.Done()
			l := spawnLeader(t)
			c, err := client.Dial(context.Background(), d.sock())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for i := range perConn {
				name := fmt.Sprintf("st%d-%d", g, i%namesPerConn)
				if err := c.Register(context.Background(), client.RegisterRequest{Name: name, Class: client.ClassContainer, LeaderPID: l.pid}); err != nil {
					errs <- fmt.Errorf("register %s: %w", name, err)
					return
				}
				if err := c.Unregister(context.Background(), client.ByName(name)); err != nil {
					errs <- fmt.Errorf("unregister %s: %w", name, err)
					return
				}
			}
		}()
	}
	swg.Wait()
	rwg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Each name's story, as the storm connection that owned it told it.
	for i, evs := range got {
		per := map[string][]string{}
		for _, e := range evs {
			per[e.name] = append(per[e.name], e.kind)
		}
		if len(per) != conns*namesPerConn {
			t.Fatalf("reader %d saw %d names", i, len(per))
		}
		for name, kinds := range per {
			if len(kinds) != 2*perConn/namesPerConn {
				t.Fatalf("reader %d: %s has %d events", i, name, len(kinds))
			}
			for j, k := range kinds {
				if want := []string{"registered", "removed"}[j%2]; k != want {
					t.Fatalf("reader %d: %s event %d is %s, want %s", i, name, j, k, want)
				}
			}
		}
		if i > 0 && fmt.Sprint(evs) != fmt.Sprint(got[0]) {
			t.Errorf("reader %d saw another order than reader 0", i)
		}
	}

	// The stalled subscriber reads at last: some events, then the error, then
	// the end of the call (no reply follows it).
	n := 0
	for {
		w, err := stalled.read()
		if err != nil {
			t.Fatalf("stalled subscriber after %d replies: %v", n, err)
		}
		if w.Error != "" {
			if w.Error != "io.github.machinedgo.MachineEvents.BacklogExceeded" || w.Parameters.Limit != 4096 || w.Continues {
				t.Fatalf("stalled subscriber's end: %+v", w)
			}
			break
		}
		n++
		if n > total {
			t.Fatal("the stalled subscriber got the whole storm")
		}
	}
	// Subscribing again gives a fresh snapshot: only .host is left.
	again := rawSubscribe(t, d)
	for _, want := range []string{"existing", "snapshotComplete"} {
		if w, err := again.read(); err != nil || w.Parameters.Event != want {
			t.Fatalf("resubscribed: %+v %v", w, err)
		}
	}
}

// A subscriber that hangs up ends its call though no event comes: its
// connection slot is free again. With 2 slots per user, nobody subscribes and
// hangs up 5 times in a row; without the hangup watch the third would be refused.
func TestEventsHangupFreesConnection(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "--max-connections-per-uid", "2")
	subscribed := func() bool {
		c, err := dialas.Unix(d.sock(), 65534, 65534)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(`{"method":"` + eventsSubscribe + `","parameters":{},"more":true}` + "\x00")); err != nil {
			return false
		}
		r := &rawSubscriber{c: c, br: bufio.NewReader(c)}
		w, err := r.read()
		return err == nil && w.Parameters.Event == "existing"
	}
	for i := range 5 {
		eventually(t, fmt.Sprintf("subscription %d", i), subscribed)
	}
}
