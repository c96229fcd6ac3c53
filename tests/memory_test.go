package tests

import (
	"testing"
	"time"

	"github.com/machined-go/machined/internal/dialas"
)

// A burst of userdb lookups grows the daemon's Go heap; once the burst is over
// the daemon gives that memory back, as it does after a burst of
// registrations, rather than holding it for as long as it runs. The lookups
// come from nobody, as any local user's could.
func TestMemoryGivenBackAfterLookupBurst(t *testing.T) {
	needRoot(t)
	// Built without the race detector, whose shadow memory would hide it.
	d := startDaemonOf(t, plainDaemonBin(t), "--units", "none", "--bus", "none")
	req := `{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{"uid":4000000000,"service":"io.systemd.Machine"}}`
	lookups := func(n int) {
		t.Helper()
		c, err := dialas.Unix(d.userdbSock(), 65534, 65534)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for range n {
			if _, err := roundTripRaw(c, req); err != nil {
				t.Fatal(err)
			}
		}
	}
	lookups(100) // what any first lookups set up is part of the base
	time.Sleep(time.Second)
	base := rssKiB(d.pid())
	lookups(50000)
	peak := rssKiB(d.pid())
	if peak-base < 2<<10 {
		t.Fatalf("RSS went from %d to %d KiB over the burst: it no longer grows the heap enough to tell whether it is given back; make it larger", base, peak)
	}
	after := peak
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if after = rssKiB(d.pid()); after-base < 2<<10 {
			return
		}
	}
	t.Errorf("RSS %d KiB before a burst of lookups, %d KiB right after, still %d KiB 10 s later", base, peak, after)
}
