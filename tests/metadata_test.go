package tests

import (
	"strings"
	"testing"
)

func TestMetadataAndMapping(t *testing.T) {
	needRoot(t)
	d := startDaemon(t)
	plain := spawnLeader(t)
	ns := spawnUserNSLeader(t, 655360)
	register(t, d, "plain", plain.pid)
	register(t, d, "ns", ns.pid)

	m, e := d.call(t, "io.systemd.Machine.List", map[string]any{"name": "plain", "acquireMetadata": "graceful"})
	if e != nil {
		t.Fatal(e.Name)
	}
	osr, _ := m["OSRelease"].([]any)
	found := false
	for _, kv := range osr {
		if strings.HasPrefix(kv.(string), "ID=") {
			found = true
		}
	}
	if !found {
		t.Errorf("OSRelease without ID=: %v", m["OSRelease"])
	}
	if m["UIDShift"] != float64(0) {
		t.Errorf("plain UIDShift %v", m["UIDShift"])
	}
	if _, ok := m["addresses"]; ok {
		t.Errorf("graceful listed addresses for a host-netns container: %v", m["addresses"])
	}
	_, e = d.call(t, "io.systemd.Machine.List", map[string]any{"name": "plain", "acquireMetadata": "yes"})
	wantError(t, e, "io.systemd.Machine.NoPrivateNetworking")

	m, e = d.call(t, "io.systemd.Machine.List", map[string]any{"name": "ns", "acquireMetadata": "graceful"})
	if e != nil || m["UIDShift"] != float64(655360) {
		t.Errorf("ns UIDShift: %v %v", m["UIDShift"], e)
	}

	m, e = d.call(t, "io.systemd.Machine.MapFrom", map[string]any{"name": "ns", "uid": 1000, "gid": 5})
	if e != nil || m["uid"] != float64(656360) || m["gid"] != float64(655365) {
		t.Errorf("MapFrom: %v %v", m, e)
	}
	m, e = d.call(t, "io.systemd.Machine.MapTo", map[string]any{"uid": 656360})
	if e != nil || m["uid"] != float64(1000) || m["machineName"] != "ns" {
		t.Errorf("MapTo: %v %v", m, e)
	}
	_, e = d.call(t, "io.systemd.Machine.MapFrom", map[string]any{"name": "ns", "uid": 70000})
	wantError(t, e, "io.systemd.Machine.NoSuchUser")
	// A machine without a user namespace owns no host ids.
	_, e = d.call(t, "io.systemd.Machine.MapTo", map[string]any{"uid": 70000})
	wantError(t, e, "io.systemd.Machine.NoSuchUser")

	ns.kill()
	eventually(t, "ns gone", func() bool { return gone(t, d, "ns") })
	_, e = d.call(t, "io.systemd.Machine.MapTo", map[string]any{"uid": 656360})
	wantError(t, e, "io.systemd.Machine.NoSuchUser")
}
