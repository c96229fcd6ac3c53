package tests

import (
	"strings"
	"testing"

	"github.com/machined-go/machined/internal/dialas"
	"github.com/machined-go/machined/service"
)

// An unprivileged user holds at most service.MaxWatchesPerUID subscriptions to
// the event stream: each one costs every registration a little and can hold a
// backlog. The next one is refused with ENOBUFS, and root still subscribes.
func TestEventsSubscriptionsPerUser(t *testing.T) {
	needRoot(t)
	d := startDaemon(t)
	const subscribe = `{"method":"io.github.machinedgo.MachineEvents.Subscribe","parameters":{},"more":true}`
	for i := 0; i <= service.MaxWatchesPerUID; i++ {
		c, err := dialas.Unix(d.sock(), 65534, 65534)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		reply, err := roundTripRaw(c, subscribe)
		if err != nil {
			t.Fatalf("subscription %d: %v", i, err)
		}
		refused := strings.Contains(reply, `"errnoName":"ENOBUFS"`)
		if i < service.MaxWatchesPerUID && refused {
			t.Fatalf("subscription %d of nobody refused: %s", i, reply)
		}
		if i == service.MaxWatchesPerUID && !refused {
			t.Fatalf("subscription %d of nobody answered %s, want io.systemd.System ENOBUFS", i, reply)
		}
	}
	c := rawConn(t, d)
	if reply, err := roundTripRaw(c, subscribe); err != nil || strings.Contains(reply, `"error"`) {
		t.Fatalf("root's subscription: %s %v", reply, err)
	}
}
