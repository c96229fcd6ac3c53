package tests

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/machined-go/machined/internal/dialas"
)

// The userdb socket's accept loop answers first calls itself and keeps the
// connections that stay open without a goroutine each: the per-uid cap and
// the idle timeout still hold for them, an unprivileged user cannot lock root
// out, and calls after the first or pipelined with it are answered in order.
func TestUserdbConnectionBoundsAsNobody(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "--units", "none", "--max-connections-per-uid", "3", "--idle-timeout", "2s")
	sock := d.userdbSock()
	lookup := []byte(`{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{"uid":0,"service":"io.systemd.Machine"}}` + "\x00")
	dial := func() *net.UnixConn {
		t.Helper()
		c, err := dialas.Unix(sock, 65534, 65534)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	call := func(c net.Conn, req []byte) (string, error) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(req); err != nil {
			return "", err
		}
		msg, err := readMessage(c)
		return string(msg), err
	}

	// Pipelined calls, then a later one, on one connection.
	piped := dial()
	piped.SetDeadline(time.Now().Add(10 * time.Second))
	piped.Write(append(append([]byte{}, lookup...), lookup...))
	var got []byte
	buf := make([]byte, 4096)
	for strings.Count(string(got), "\x00") < 2 {
		n, err := piped.Read(buf)
		if err != nil {
			t.Fatalf("pipelined calls: %q %v", got, err)
		}
		got = append(got, buf[:n]...)
	}
	if r, err := call(piped, lookup); err != nil || !strings.Contains(r, "NoRecordFound") {
		t.Fatalf("later call: %q %v", r, err)
	}
	if strings.Count(string(got), "NoRecordFound") != 2 {
		t.Errorf("pipelined replies: %q", got)
	}

	// piped, one silent connection and one answered: the cap of 3.
	silent := dial()
	answered := dial()
	if r, err := call(answered, lookup); err != nil || !strings.Contains(r, "NoRecordFound") {
		t.Fatalf("%q %v", r, err)
	}
	if r, err := call(dial(), lookup); err == nil {
		t.Errorf("a fourth connection of nobody was answered: %q", r)
	}
	if out, errOut, code := varlinkctl(t, "call", sock, "io.systemd.UserDatabase.GetUserRecord", `{"uid":0,"service":"io.systemd.Machine"}`); code == 0 || !strings.Contains(errOut, "NoRecordFound") {
		t.Errorf("root locked out: %q %q %d", out, errOut, code)
	}

	// The idle timeout closes all three; then nobody is served again.
	for name, c := range map[string]net.Conn{"pipelined": piped, "silent": silent, "answered": answered} {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if n, err := c.Read(buf); err == nil {
			t.Errorf("%s connection not closed when idle (read %d bytes)", name, n)
		}
	}
	eventually(t, "nobody to be served after the idle timeout", func() bool {
		r, err := call(dial(), lookup)
		return err == nil && strings.Contains(r, "NoRecordFound")
	})
}

// A kept connection of nobody's is answered call after call, lookups and
// enumerations ("more") alike, and 2,000 lookups pipelined without reading get their 2,000
// replies in order once nobody reads.
func TestUserdbKeptConnectionAsNobody(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "--units", "none")
	c, err := dialas.Unix(d.userdbSock(), 65534, 65534)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	next := func() string {
		t.Helper()
		msg, err := r.ReadString(0)
		if err != nil {
			t.Fatalf("after %q: %v", msg, err)
		}
		return msg
	}
	byUID := func(uid int) []byte {
		return []byte(fmt.Sprintf(`{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{"uid":%d,"service":"io.systemd.Machine"}}`+"\x00", uid))
	}
	calls := []struct {
		call  []byte
		reply string
	}{
		{byUID(0), "NoRecordFound"},
		{[]byte(`{"method":"io.systemd.UserDatabase.GetMemberships","parameters":{"service":"io.systemd.Machine"},"more":true}` + "\x00"), "NoRecordFound"},
		{[]byte(`{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{"service":"io.systemd.Machine"},"more":true}` + "\x00"), "EnumerationNotSupported"},
		{byUID(1), "NoRecordFound"},
	}
	for round := range 3 {
		for _, call := range calls {
			if _, err := c.Write(call.call); err != nil {
				t.Fatal(err)
			}
			if reply := next(); !strings.Contains(reply, call.reply) {
				t.Fatalf("round %d, %s: %q, want %s", round, call.call, reply, call.reply)
			}
		}
	}
	var piped []byte
	const n = 2000
	for i := range n {
		piped = append(piped, byUID(60000+i)...)
	}
	if _, err := c.Write(piped); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if reply := next(); !strings.Contains(reply, "NoRecordFound") {
			t.Fatalf("pipelined call %d: %q", i, reply)
		}
	}
	if _, err := c.Write(byUID(2)); err != nil {
		t.Fatal(err)
	}
	if reply := next(); !strings.Contains(reply, "NoRecordFound") {
		t.Fatalf("call after the pipelined ones: %q", reply)
	}
}
