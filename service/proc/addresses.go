package proc

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"sort"
	"syscall"

	"golang.org/x/sys/unix"
)

// Address is one IP address of an interface.
type Address struct {
	IfIndex int
	Family  int
	Addr    []byte
}

// SharesHostNetNS reports whether the process lives in our network namespace.
func SharesHostNetNS(p *PidRef) (bool, error) {
	var self, other unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &self); err != nil {
		return false, fmt.Errorf("stat own netns: %w", err)
	}
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", p.PID), &other); err != nil {
		return false, fmt.Errorf("stat netns of pid %d: %w", p.PID, err)
	}
	if err := p.Verify(); err != nil {
		return false, err
	}
	return self.Dev == other.Dev && self.Ino == other.Ino, nil
}

// Addresses lists the IP addresses in the process' network namespace.
func Addresses(ctx context.Context, p *PidRef) ([]Address, error) {
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", p.PID), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening netns of pid %d: %w", p.PID, err)
	}
	if err := p.Verify(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return dumpAddresses(ctx, fd)
}

// HostAddresses lists the IP addresses in our own network namespace.
func HostAddresses(ctx context.Context) ([]Address, error) {
	return dumpAddresses(ctx, -1)
}

type addrResult struct {
	addrs []Address
	err   error
}

// dumpAddresses runs the dump on a dedicated thread; nsfd (if >= 0) is
// consumed. The thread switched into another namespace is never unlocked, so
// it is destroyed when the goroutine exits.
func dumpAddresses(ctx context.Context, nsfd int) ([]Address, error) {
	ch := make(chan addrResult, 1)
	go func() {
		if nsfd >= 0 {
			runtime.LockOSThread()
			err := unix.Setns(nsfd, unix.CLONE_NEWNET)
			unix.Close(nsfd)
			if err != nil {
				ch <- addrResult{err: fmt.Errorf("setns: %w", err)}
				return
			}
		}
		a, err := ribAddresses()
		ch <- addrResult{a, err}
	}()
	select {
	case r := <-ch:
		return r.addrs, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func ribAddresses() ([]Address, error) {
	tab, err := syscall.NetlinkRIB(unix.RTM_GETADDR, unix.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("netlink RTM_GETADDR: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(tab)
	if err != nil {
		return nil, fmt.Errorf("parsing netlink messages: %w", err)
	}
	var out []Address
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Type != unix.RTM_NEWADDR || len(m.Data) < unix.SizeofIfAddrmsg {
			continue
		}
		family := int(m.Data[0])
		index := int(binary.NativeEndian.Uint32(m.Data[4:8]))
		var want int
		switch family {
		case unix.AF_INET:
			want = 4
		case unix.AF_INET6:
			want = 16
		default:
			continue
		}
		attrs, err := syscall.ParseNetlinkRouteAttr(m)
		if err != nil {
			continue
		}
		var local, address []byte
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.IFA_LOCAL:
				local = a.Value
			case unix.IFA_ADDRESS:
				address = a.Value
			}
		}
		addr := address
		if family == unix.AF_INET && local != nil {
			addr = local
		}
		if len(addr) != want {
			continue
		}
		out = append(out, Address{IfIndex: index, Family: family, Addr: append([]byte(nil), addr...)})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].IfIndex != out[j].IfIndex {
			return out[i].IfIndex < out[j].IfIndex
		}
		return out[i].Family < out[j].Family
	})
	return out, nil
}
