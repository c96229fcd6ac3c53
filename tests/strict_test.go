package tests

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

// A number sent as a string is a type error on both sockets, not a number.
func TestQuotedNumbersRefused(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "--units", "none")
	l := spawnLeader(t)
	userdbSock := d.userdbSock()
	for _, tc := range []struct{ sock, method, params, param string }{
		{d.sock(), "io.systemd.Machine.Register", fmt.Sprintf(`{"name":"q","class":"container","leader":"%d"}`, l.pid), "leader"},
		{d.sock(), "io.systemd.Machine.Register", fmt.Sprintf(`{"name":"q","class":"container","leaderProcessId":{"pid":"%d"}}`, l.pid), "leaderProcessId"},
		{d.sock(), "io.systemd.Machine.Kill", `{"name":".host","signal":"15"}`, "signal"},
		{d.sock(), "io.systemd.Machine.MapTo", `{"uid":"0"}`, "uid"},
		{userdbSock, "io.systemd.UserDatabase.GetUserRecord", `{"uid":"0","service":"io.systemd.Machine"}`, "uid"},
		{userdbSock, "io.systemd.UserDatabase.GetGroupRecord", `{"gid":"0","service":"io.systemd.Machine"}`, "gid"},
	} {
		for _, via := range []string{"varlinkctl", "raw"} {
			var reply string
			if via == "varlinkctl" {
				out, errOut, code := varlinkctl(t, "call", "-j", tc.sock, tc.method, tc.params)
				if code == 0 {
					t.Errorf("%s %s via varlinkctl succeeded: %s", tc.method, tc.params, out)
					continue
				}
				reply = errOut + out
			} else {
				c, err := net.Dial("unix", tc.sock)
				if err != nil {
					t.Fatal(err)
				}
				reply, err = roundTripRaw(c, fmt.Sprintf(`{"method":%q,"parameters":%s}`, tc.method, tc.params))
				c.Close()
				if err != nil {
					t.Fatalf("%s: %v", tc.method, err)
				}
			}
			if !strings.Contains(reply, "org.varlink.service.InvalidParameter") || !strings.Contains(reply, fmt.Sprintf(`"parameter":"%s"`, tc.param)) {
				t.Errorf("%s %s via %s: %s, want InvalidParameter %s", tc.method, tc.params, via, reply, tc.param)
			}
		}
	}
	if !gone(t, d, "q") {
		t.Error("a registration with a quoted leader went through")
	}
}

// Two "method" keys (or two of any envelope key, or one in another case) are
// a protocol error, not a call of the last one; a key twice in the
// parameters is an invalid parameter naming it. The connection goes on after
// either, since the framing is intact.
func TestDuplicateKeysRefused(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "--units", "none")
	userdbSock := d.userdbSock()
	for _, sock := range []string{d.sock(), userdbSock} {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, bad := range []string{
			`{"method":"org.varlink.service.GetInfo","method":"io.systemd.Machine.Unregister","parameters":{}}`,
			`{"method":"org.varlink.service.GetInfo","parameters":{},"parameters":{"x":1}}`,
			`{"method":"org.varlink.service.GetInfo","oneway":false,"oneway":true}`,
			`{"method":"org.varlink.service.GetInfo","Method":"io.systemd.Machine.Unregister"}`,
			`{"METHOD":"org.varlink.service.GetInfo"}`,
		} {
			r, err := roundTripRaw(c, bad)
			if err != nil {
				t.Fatalf("%s: %s: %v", sock, bad, err)
			}
			if !strings.Contains(r, `"error":"io.systemd.Protocol"`) {
				t.Errorf("%s: %s answered %s, want io.systemd.Protocol", sock, bad, r)
			}
		}
		r, err := roundTripRaw(c, `{"method":"org.varlink.service.GetInfo","parameters":{}}`)
		if err != nil || strings.Contains(r, `"error"`) {
			t.Errorf("%s: connection unusable after the refusals: %s %v", sock, r, err)
		}
	}
	for _, tc := range []struct{ sock, msg, param string }{
		{d.sock(), `{"method":"io.systemd.Machine.List","parameters":{"name":".host","name":"nope"},"more":true}`, "name"},
		{userdbSock, `{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{"uid":0,"service":"io.systemd.Machine","uid":655360}}`, "uid"},
	} {
		c, err := net.Dial("unix", tc.sock)
		if err != nil {
			t.Fatal(err)
		}
		r, err := roundTripRaw(c, tc.msg)
		c.Close()
		if err != nil || !strings.Contains(r, "org.varlink.service.InvalidParameter") || !strings.Contains(r, fmt.Sprintf(`"parameter":"%s"`, tc.param)) {
			t.Errorf("%s answered %s %v, want InvalidParameter %s", tc.msg, r, err, tc.param)
		}
	}
	// varlinkctl passes a duplicate parameter through as it was typed.
	out, errOut, code := varlinkctl(t, "call", "-j", "--more", d.sock(), "io.systemd.Machine.List", `{"name":".host","name":"nope"}`)
	if code == 0 || !strings.Contains(errOut, "org.varlink.service.InvalidParameter") || !strings.Contains(out, `"parameter":"name"`) {
		t.Errorf("varlinkctl with a duplicate parameter: %d %s %s", code, out, errOut)
	}
}
