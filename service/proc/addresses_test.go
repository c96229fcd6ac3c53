package proc

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netnsChild starts sleep in a fresh network namespace.
func netnsChild(t *testing.T) *PidRef {
	t.Helper()
	needRoot(t)
	return openChild(t, startChild(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}, "sleep", "60"))
}

// inNetns runs a command inside the process' network namespace.
func inNetns(t *testing.T, p *PidRef, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("no nsenter")
	}
	if _, err := exec.LookPath(args[0]); err != nil {
		t.Skipf("no %s", args[0])
	}
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(p.PID), "-n"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nsenter %v: %v\n%s", args, err, out)
	}
}

func ctx10s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// has reports whether addrs lists ip on ifindex with the right family and
// address length.
func has(addrs []Address, ifindex int, ip string) bool {
	want := net.ParseIP(ip)
	fam, size := unix.AF_INET6, 16
	if v4 := want.To4(); v4 != nil {
		fam, size, want = unix.AF_INET, 4, v4
	}
	return slices.ContainsFunc(addrs, func(a Address) bool {
		return a.IfIndex == ifindex && a.Family == fam && len(a.Addr) == size && net.IP(a.Addr).Equal(want)
	})
}

func TestSharesHostNetNS(t *testing.T) {
	self, err := Open(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	if shared, err := SharesHostNetNS(self); err != nil || !shared {
		t.Errorf("SharesHostNetNS(self) = %v, %v", shared, err)
	}
	p := netnsChild(t)
	if shared, err := SharesHostNetNS(p); err != nil || shared {
		t.Errorf("SharesHostNetNS(netns child) = %v, %v", shared, err)
	}
}

func TestAddressesFreshNetns(t *testing.T) {
	p := netnsChild(t)
	// A new namespace has only lo, and it is down: no addresses at all.
	addrs, err := Addresses(ctx10s(t), p)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 0 {
		t.Errorf("fresh netns has addresses %v", addrs)
	}
}

func TestAddressesConfigured(t *testing.T) {
	p := netnsChild(t)
	inNetns(t, p, "ip", "addr", "add", "10.99.0.1/24", "dev", "lo")
	inNetns(t, p, "ip", "link", "set", "lo", "up")
	inNetns(t, p, "ip", "link", "add", "veth9", "type", "veth", "peer", "name", "veth9p")
	inNetns(t, p, "ip", "addr", "add", "10.98.0.2/16", "dev", "veth9")
	// A point-to-point address: the local side must be reported, not the peer.
	inNetns(t, p, "ip", "addr", "add", "10.97.0.1", "peer", "10.97.0.2", "dev", "veth9")
	inNetns(t, p, "ip", "-6", "addr", "add", "fd00:99::1/64", "dev", "veth9", "nodad")

	addrs, err := Addresses(ctx10s(t), p)
	if err != nil {
		t.Fatal(err)
	}
	ifi := linkIndex(t, p, "veth9")
	for _, want := range []struct {
		ifindex int
		ip      string
	}{
		{1, "10.99.0.1"},
		{ifi, "10.98.0.2"}, {ifi, "10.97.0.1"}, {ifi, "fd00:99::1"},
	} {
		if !has(addrs, want.ifindex, want.ip) {
			t.Errorf("%s on ifindex %d missing from %v", want.ip, want.ifindex, addrs)
		}
	}
	if has(addrs, ifi, "10.97.0.2") {
		t.Error("peer address reported as local")
	}
	// Loopback addresses name the namespace itself, not a way into it.
	if has(addrs, 1, "127.0.0.1") || has(addrs, 1, "::1") {
		t.Errorf("loopback addresses listed: %v", addrs)
	}
	if !slices.IsSortedFunc(addrs, compareAddresses) || addrs[0].Family != unix.AF_INET || addrs[len(addrs)-1].Family != unix.AF_INET6 {
		t.Errorf("not in upstream's order (IPv4 first): %v", addrs)
	}
	// None of the namespace's addresses may leak in from the host or back out.
	host, err := HostAddresses(ctx10s(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range host {
		if net.IP(a.Addr).Equal(net.ParseIP("10.99.0.1")) {
			t.Error("container address shows up on the host")
		}
	}
}

// linkIndex reads an interface's index from inside the namespace.
func linkIndex(t *testing.T, p *PidRef, name string) int {
	t.Helper()
	out, err := exec.Command("nsenter", "-t", strconv.Itoa(p.PID), "-n", "ip", "-o", "link", "show", name).Output()
	if err != nil {
		t.Fatal(err)
	}
	idx, _, _ := strings.Cut(string(out), ":")
	n, err := strconv.Atoi(idx)
	if err != nil {
		t.Fatalf("ifindex in %q: %v", out, err)
	}
	return n
}

// TestHostAddressesMatchStdlib cross-checks the raw dump against net.Interfaces.
func TestHostAddressesMatchStdlib(t *testing.T) {
	got, err := HostAddresses(ctx10s(t))
	if err != nil {
		t.Fatal(err)
	}
	ifs, err := net.Interfaces()
	if err != nil {
		t.Skip(err)
	}
	n := 0
	for _, ifc := range ifs {
		as, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range as {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLoopback() {
				continue
			}
			n++
			if !has(got, ifc.Index, ipn.IP.String()) {
				t.Errorf("%s on %s (%d) missing from %v", ipn.IP, ifc.Name, ifc.Index, got)
			}
		}
	}
	if len(got) != n {
		t.Errorf("HostAddresses found %d addresses, net.Interfaces %d", len(got), n)
	}
}

func TestAddressesCancelled(t *testing.T) {
	p := netnsChild(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Addresses(ctx, p); !errors.Is(err, context.Canceled) {
		t.Errorf("Addresses(cancelled) = %v, want context.Canceled", err)
	}
	if _, err := HostAddresses(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("HostAddresses(cancelled) = %v, want context.Canceled", err)
	}
}

func TestAddressesGone(t *testing.T) {
	needRoot(t)
	cmd := startChild(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}, "sleep", "60")
	p := openChild(t, cmd)
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := Addresses(ctx10s(t), p); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("Addresses after reap = %v, want ESRCH", err)
	}
	if _, err := SharesHostNetNS(p); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("SharesHostNetNS after reap = %v, want ESRCH", err)
	}
}

// TestAddressesLeavesNoThreadBehind checks that the threads which entered the
// container's namespace die with their goroutines: afterwards every thread,
// the main thread in particular, must be in our namespace again.
func TestAddressesLeavesNoThreadBehind(t *testing.T) {
	p := netnsChild(t)
	own, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	// Enough rounds that some land on the main thread's goroutine slot.
	for range 50 {
		if _, err := Addresses(ctx10s(t), p); err != nil {
			t.Fatal(err)
		}
	}
	main := "/proc/self/task/" + strconv.Itoa(os.Getpid()) + "/ns/net"
	if ns, err := os.Readlink(main); err != nil || ns != own {
		t.Fatalf("main thread is in %s (%v), want %s", ns, err, own)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		stray := strayThreads(t, own)
		if len(stray) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("threads %v still in another network namespace", stray)
		}
		time.Sleep(20 * time.Millisecond)
	}
	self, err := Open(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	if shared, err := SharesHostNetNS(self); err != nil || !shared {
		t.Errorf("SharesHostNetNS(self) after the dumps = %v, %v", shared, err)
	}
}

func strayThreads(t *testing.T, own string) []string {
	t.Helper()
	return threadsWhere(t, func(tid string) (string, bool) {
		ns, err := os.Readlink("/proc/self/task/" + tid + "/ns/net")
		return tid + ":" + ns, err == nil && ns != own
	})
}

// addrMessage builds one RTM_NEWADDR message as the kernel sends it.
func addrMessage(family, flags, scope uint8, ifindex uint32, attrs map[uint16][]byte) *syscall.NetlinkMessage {
	data := []byte{family, 24, flags, scope, 0, 0, 0, 0}
	binary.NativeEndian.PutUint32(data[4:8], ifindex)
	for _, typ := range []uint16{unix.IFA_ADDRESS, unix.IFA_LOCAL} {
		v, ok := attrs[typ]
		if !ok {
			continue
		}
		a := make([]byte, 4, 4+len(v)+3)
		binary.NativeEndian.PutUint16(a[0:2], uint16(4+len(v)))
		binary.NativeEndian.PutUint16(a[2:4], typ)
		a = append(a, v...)
		for len(a)%4 != 0 {
			a = append(a, 0)
		}
		data = append(data, a...)
	}
	return &syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.RTM_NEWADDR}, Data: data}
}

// Loopback (host scope), nowhere-scope and deprecated addresses are not listed;
// the rest come IPv4 first, then by scope, interface index and address.
func TestParseAndOrderAddresses(t *testing.T) {
	v4 := func(s string) []byte { return net.ParseIP(s).To4() }
	v6 := func(s string) []byte { return net.ParseIP(s).To16() }
	msgs := []*syscall.NetlinkMessage{
		addrMessage(unix.AF_INET6, 0, unix.RT_SCOPE_HOST, 1, map[uint16][]byte{unix.IFA_ADDRESS: v6("::1")}),
		addrMessage(unix.AF_INET6, 0, unix.RT_SCOPE_LINK, 2, map[uint16][]byte{unix.IFA_ADDRESS: v6("fe80::1")}),
		addrMessage(unix.AF_INET6, 0, unix.RT_SCOPE_UNIVERSE, 3, map[uint16][]byte{unix.IFA_ADDRESS: v6("fd00::3")}),
		addrMessage(unix.AF_INET6, 0, unix.RT_SCOPE_UNIVERSE, 2, map[uint16][]byte{unix.IFA_ADDRESS: v6("fd00::2")}),
		addrMessage(unix.AF_INET6, unix.IFA_F_DEPRECATED, unix.RT_SCOPE_UNIVERSE, 2, map[uint16][]byte{unix.IFA_ADDRESS: v6("fd00::dead")}),
		addrMessage(unix.AF_INET, 0, unix.RT_SCOPE_HOST, 1, map[uint16][]byte{unix.IFA_LOCAL: v4("127.0.0.1"), unix.IFA_ADDRESS: v4("127.0.0.1")}),
		addrMessage(unix.AF_INET, 0, unix.RT_SCOPE_NOWHERE, 2, map[uint16][]byte{unix.IFA_LOCAL: v4("10.0.0.9")}),
		addrMessage(unix.AF_INET, 0, unix.RT_SCOPE_UNIVERSE, 3, map[uint16][]byte{unix.IFA_LOCAL: v4("10.0.0.3")}),
		addrMessage(unix.AF_INET, 0, unix.RT_SCOPE_LINK, 2, map[uint16][]byte{unix.IFA_LOCAL: v4("169.254.0.2")}),
		addrMessage(unix.AF_INET, 0, unix.RT_SCOPE_UNIVERSE, 2, map[uint16][]byte{unix.IFA_LOCAL: v4("10.0.0.2"), unix.IFA_ADDRESS: v4("10.0.0.200")}),
		addrMessage(unix.AF_INET, 0, unix.RT_SCOPE_UNIVERSE, 2, map[uint16][]byte{unix.IFA_LOCAL: v4("10.0.0.1")}),
	}
	var got []string
	var addrs []Address
	for _, m := range msgs {
		if a, ok := parseAddrMessage(m); ok {
			addrs = append(addrs, a)
		}
	}
	slices.SortFunc(addrs, compareAddresses)
	for _, a := range addrs {
		got = append(got, strconv.Itoa(a.IfIndex)+"/"+net.IP(a.Addr).String())
	}
	want := []string{
		"2/10.0.0.1", "2/10.0.0.2", "3/10.0.0.3", "2/169.254.0.2",
		"2/fd00::2", "3/fd00::3", "2/fe80::1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}
