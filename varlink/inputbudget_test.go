package varlink

import (
	"bytes"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/machined-go/machined/internal/dialas"
)

func smallBudgetLimits() Limits {
	lim := DefaultLimits()
	lim.MaxMessageSize = 64 << 10
	lim.MaxPendingInput = 2 * lim.MinPendingInput()
	return lim
}

// The rules on their own: a user's share, the unprivileged total, root past
// both, the whole budget for everyone, and give returning what reserve took.
func TestInputBudgetRules(t *testing.T) {
	lim := smallBudgetLimits()
	big := largestBuffer(lim.MaxMessageSize)
	b := newInputBudget(lim)
	if b.share != max(lim.MaxPendingInput/4, big) || b.share < big {
		t.Fatalf("share %d: want a quarter of %d, at least one maximal buffer %d", b.share, lim.MaxPendingInput, big)
	}
	if err := b.reserve(1000, false, b.share); err != nil {
		t.Fatalf("a user's full share: %v", err)
	}
	if err := b.reserve(1000, false, 1); !errors.Is(err, ErrInputBudget) {
		t.Errorf("a byte past a user's share: %v", err)
	}
	for uid := uint32(1001); b.unpriv+b.share <= b.unprivCap; uid++ {
		if err := b.reserve(uid, false, b.share); err != nil {
			t.Fatalf("uid %d within the unprivileged total: %v", uid, err)
		}
	}
	if err := b.reserve(2000, false, b.unprivCap-b.unpriv+1); !errors.Is(err, ErrInputBudget) {
		t.Errorf("past the unprivileged total: %v", err)
	}
	if err := b.reserve(0, true, big); err != nil {
		t.Errorf("root's maximal message with the unprivileged total used: %v", err)
	}
	if err := b.reserve(0, true, b.total-b.used+1); !errors.Is(err, ErrInputBudget) {
		t.Errorf("root past the whole budget: %v", err)
	}
	b.give(0, true, big)
	b.give(1000, false, b.share)
	if err := b.reserve(1000, false, b.share); err != nil {
		t.Errorf("a share given back cannot be taken again: %v", err)
	}
	if newInputBudget(Limits{}) != nil {
		t.Error("a zero MaxPendingInput is not unbounded")
	}
}

// A user whose second connection would take more than its share is cut off
// with io.systemd.Protocol; root's large message and the user's own first one
// still go through, and every reserved byte comes back.
func TestInputBudgetRefusesTheHog(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to connect as another user")
	}
	lim := smallBudgetLimits()
	path, s := serveOn(t, lim, echo)
	first, err := dialas.Unix(path, 65534, 65534)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	part := bytes.Repeat([]byte("a"), lim.MaxMessageSize-10)
	first.Write(part)
	waitFor(t, func() bool { return s.PendingInput() >= lim.MaxMessageSize }, "the first partial message to be buffered")

	second, err := dialas.Unix(path, 65534, 65534)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.Write(bytes.Repeat([]byte("b"), 2*readChunk))
	r, err := readAll(second)
	if !strings.Contains(r, "io.systemd.Protocol") {
		t.Errorf("the user's second connection over its share got %q %v, want io.systemd.Protocol and a hangup", r, err)
	}

	root, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if r, err := roundTrip(t, root, strings.Repeat("r", lim.MaxMessageSize)); err != nil || len(r) < lim.MaxMessageSize {
		t.Errorf("root's maximal message: %d bytes back, %v", len(r), err)
	}
	first.Write([]byte("\x00"))
	if r, err := readOne(first); err != nil || len(r) < len(part) {
		t.Errorf("the user's first message: %d bytes back, %v", len(r), err)
	}
	waitFor(t, func() bool { return s.PendingInput() == 0 }, "the budget to drain")

	// A connection closed mid-message gives its reservation back too.
	third, err := dialas.Unix(path, 65534, 65534)
	if err != nil {
		t.Fatal(err)
	}
	third.Write(part)
	waitFor(t, func() bool { return s.PendingInput() > 0 }, "the partial message to be buffered")
	third.Close()
	waitFor(t, func() bool { return s.PendingInput() == 0 }, "a closed connection's reservation to come back")
}

// One maximal message from an unprivileged user fits its share.
func TestInputBudgetFitsMaximalMessage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to connect as another user")
	}
	lim := smallBudgetLimits()
	path, _ := serveOn(t, lim, echo)
	c, err := dialas.Unix(path, 65534, 65534)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r, err := roundTrip(t, c, strings.Repeat("m", lim.MaxMessageSize)); err != nil || strings.Contains(r, "error") || len(r) < lim.MaxMessageSize {
		t.Errorf("maximal message: %.80q %v", r, err)
	}
}

func readOne(c net.Conn) (string, error) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var buf []byte
	b := make([]byte, 64<<10)
	for {
		n, err := c.Read(b)
		buf = append(buf, b[:n]...)
		if i := bytes.IndexByte(buf, 0); i >= 0 {
			return string(buf[:i]), nil
		}
		if err != nil {
			return string(buf), err
		}
	}
}

// readAll reads until the server hangs up.
func readAll(c net.Conn) (string, error) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var buf []byte
	b := make([]byte, 4096)
	for {
		n, err := c.Read(b)
		buf = append(buf, b[:n]...)
		if err != nil {
			return string(buf), err
		}
	}
}
