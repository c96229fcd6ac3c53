package tests

import (
	"context"
	"strings"
	"testing"

	"github.com/machined-go/machined/client"
)

func TestMetadataAndMapping(t *testing.T) {
	needRoot(t)
	d := startDaemon(t)
	plain := spawnLeader(t)
	ns := spawnUserNSLeader(t, 655360)
	register(t, d, "plain", plain.pid)
	register(t, d, "ns", ns.pid)

	c := dialClient(t, d)
	ctx := context.Background()
	m, err := c.Get(ctx, client.ByName("plain"), client.MetadataGraceful)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, kv := range m.OSRelease {
		if strings.HasPrefix(kv, "ID=") {
			found = true
		}
	}
	if !found {
		t.Errorf("OSRelease without ID=: %v", m.OSRelease)
	}
	if m.UIDShift == nil || *m.UIDShift != 0 {
		t.Errorf("plain UIDShift %v", m.UIDShift)
	}
	if m.Addresses != nil {
		t.Errorf("graceful listed addresses for a host-netns container: %v", m.Addresses)
	}
	_, err = c.Get(ctx, client.ByName("plain"), client.MetadataYes)
	wantReply(t, err, "io.systemd.Machine.NoPrivateNetworking")

	m, err = c.Get(ctx, client.ByName("ns"), client.MetadataGraceful)
	if err != nil || m.UIDShift == nil || *m.UIDShift != 655360 {
		t.Errorf("ns UIDShift: %v %v", m.UIDShift, err)
	}

	uid, gid := uint32(1000), uint32(5)
	ids, err := c.MapFrom(ctx, client.ByName("ns"), client.IDs{UID: &uid, GID: &gid})
	if err != nil || ids.UID == nil || *ids.UID != 656360 || ids.GID == nil || *ids.GID != 655365 {
		t.Errorf("MapFrom: %+v %v", ids, err)
	}
	ids, name, err := c.MapTo(ctx, client.UserID(656360))
	if err != nil || ids.UID == nil || *ids.UID != 1000 || name != "ns" {
		t.Errorf("MapTo: %+v %q %v", ids, name, err)
	}
	_, err = c.MapFrom(ctx, client.ByName("ns"), client.UserID(70000))
	wantReply(t, err, "io.systemd.Machine.NoSuchUser")
	// A machine without a user namespace owns no host ids.
	_, _, err = c.MapTo(ctx, client.UserID(70000))
	wantReply(t, err, "io.systemd.Machine.NoSuchUser")

	ns.kill()
	eventually(t, "ns gone", func() bool { return gone(t, d, "ns") })
	_, _, err = c.MapTo(ctx, client.UserID(656360))
	wantReply(t, err, "io.systemd.Machine.NoSuchUser")
}
