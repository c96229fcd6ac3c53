package proc

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Address is one IP address configured on an interface.
type Address struct {
	IfIndex int    // interface index in the namespace the address was read from
	Family  int    // unix.AF_INET or unix.AF_INET6
	Addr    []byte // 4 bytes for AF_INET, 16 for AF_INET6
	scope   uint8  // RT_SCOPE_*: the sort key after the family
}

// maxDumpTime bounds an address dump when the context has no deadline: a
// netlink dump takes milliseconds, and a daemon must not wait forever.
const maxDumpTime = 10 * time.Second

// SharesHostNetNS reports whether the process uses our network namespace,
// comparing the namespace files' device and inode, and checks the pidfd
// afterwards.
func SharesHostNetNS(p *PidRef) (bool, error) {
	var self, other unix.Stat_t
	// thread-self, not self: /proc/self/ns names the main thread's namespaces,
	// and only the calling thread is known to be one of ours.
	if err := unix.Stat("/proc/thread-self/ns/net", &self); err != nil {
		return false, fmt.Errorf("stat own network namespace: %w", err)
	}
	if err := unix.Stat("/proc/"+strconv.Itoa(p.PID)+"/ns/net", &other); err != nil {
		return false, p.gone(fmt.Errorf("stat network namespace of pid %d: %w", p.PID, err))
	}
	if err := p.Verify(); err != nil {
		return false, err
	}
	return self.Dev == other.Dev && self.Ino == other.Ino, nil
}

// Addresses lists the IPv4 and IPv6 addresses by which the process' network
// namespace can be reached from outside it, in the order of compareAddresses.
// Loopback (host scope) and deprecated addresses are left out, as upstream
// does: a name lookup (nss-mymachines) takes the first address, and ::1 would
// send the client to itself.
//
// The namespace is entered on a disposable OS thread (onDisposableThread), so
// no goroutine ever runs in it afterwards. ctx bounds the dump.
func Addresses(ctx context.Context, p *PidRef) ([]Address, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("addresses of pid %d: %w", p.PID, err)
	}
	nsfd, err := unix.Open("/proc/"+strconv.Itoa(p.PID)+"/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, p.gone(fmt.Errorf("open network namespace of pid %d: %w", p.PID, err))
	}
	// The fd pins the namespace from here on; only the open could have raced.
	if err := p.Verify(); err != nil {
		unix.Close(nsfd)
		return nil, err
	}
	ch := onDisposableThread(func() dumpResult { return dumpInNetns(ctx, nsfd) })
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("addresses of pid %d: %w", p.PID, r.err)
		}
		return r.addrs, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("addresses of pid %d: %w", p.PID, ctx.Err())
	}
}

type dumpResult struct {
	addrs []Address
	err   error
}

// dumpInNetns moves the calling thread into the network namespace nsfd (which
// it closes) and dumps the addresses there. The thread must be locked and must
// not be unlocked afterwards.
func dumpInNetns(ctx context.Context, nsfd int) dumpResult {
	err := unix.Setns(nsfd, unix.CLONE_NEWNET)
	unix.Close(nsfd)
	if err != nil {
		return dumpResult{err: fmt.Errorf("enter network namespace: %w", err)}
	}
	a, err := dumpAddresses(ctx)
	return dumpResult{a, err}
}

// HostAddresses lists the addresses of our own network namespace, filtered and
// ordered like Addresses.
func HostAddresses(ctx context.Context) ([]Address, error) {
	a, err := dumpAddresses(ctx)
	if err != nil {
		return nil, fmt.Errorf("host addresses: %w", err)
	}
	return a, nil
}

// dumpAddresses runs an RTM_GETADDR dump in the calling thread's network
// namespace. The socket is non-blocking and parked on the netpoller, so ctx
// can interrupt the wait through a read deadline.
func dumpAddresses(ctx context.Context) ([]Address, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, maxDumpTime)
		defer cancel()
	}
	// Dumps interrupted by a concurrent change are flagged; retry a few times,
	// then settle for the last, possibly inconsistent, answer.
	for try := 0; ; try++ {
		addrs, interrupted, err := dumpOnce(ctx)
		if err != nil {
			return nil, err
		}
		if !interrupted || try == 2 {
			slices.SortFunc(addrs, compareAddresses)
			return addrs, nil
		}
	}
}

func dumpOnce(ctx context.Context) (addrs []Address, interrupted bool, err error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, false, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, false, fmt.Errorf("bind netlink socket: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, false, fmt.Errorf("netlink socket name: %w", err)
	}
	portID := sa.(*unix.SockaddrNetlink).Pid

	f := os.NewFile(uintptr(fd), "netlink-route")
	defer f.Close()
	if dl, ok := ctx.Deadline(); ok {
		f.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { f.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, false, fmt.Errorf("netlink socket: %w", err)
	}
	ctxErr := func(err error) error {
		if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}

	const seq = 1
	req := make([]byte, unix.SizeofNlMsghdr+unix.SizeofIfAddrmsg)
	binary.NativeEndian.PutUint32(req[0:4], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:6], unix.RTM_GETADDR)
	binary.NativeEndian.PutUint16(req[6:8], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:12], seq)
	req[unix.SizeofNlMsghdr] = unix.AF_UNSPEC // ifaddrmsg.ifa_family: all families
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	}); err != nil {
		return nil, false, fmt.Errorf("send RTM_GETADDR: %w", ctxErr(err))
	}
	if serr != nil {
		return nil, false, fmt.Errorf("send RTM_GETADDR: %w", serr)
	}

	// Dump batches are at most 32 KiB; a bigger buffer never truncates.
	buf := make([]byte, 64<<10)
	for {
		var (
			n, flags int
			from     unix.Sockaddr
			rerr     error
		)
		if err := rc.Read(func(fd uintptr) bool {
			n, _, flags, from, rerr = unix.Recvmsg(int(fd), buf, nil, 0)
			return rerr != unix.EAGAIN && rerr != unix.EINTR
		}); err != nil {
			return nil, false, fmt.Errorf("receive RTM_GETADDR dump: %w", ctxErr(err))
		}
		if rerr != nil {
			return nil, false, fmt.Errorf("receive RTM_GETADDR dump: %w", rerr)
		}
		if flags&unix.MSG_TRUNC != 0 {
			return nil, false, fmt.Errorf("receive RTM_GETADDR dump: message truncated: %w", syscall.EMSGSIZE)
		}
		if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != 0 {
			continue // not from the kernel
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, false, fmt.Errorf("parse RTM_GETADDR dump: %w", err)
		}
		for i := range msgs {
			m := &msgs[i]
			if m.Header.Seq != seq || m.Header.Pid != portID {
				continue
			}
			if m.Header.Flags&unix.NLM_F_DUMP_INTR != 0 {
				interrupted = true
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				if len(m.Data) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(m.Data[:4])); e < 0 {
						return nil, false, fmt.Errorf("RTM_GETADDR dump: %w", syscall.Errno(-e))
					}
				}
				return addrs, interrupted, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return nil, false, fmt.Errorf("RTM_GETADDR dump: short error message: %w", syscall.EBADMSG)
				}
				if e := int32(binary.NativeEndian.Uint32(m.Data[:4])); e < 0 {
					return nil, false, fmt.Errorf("RTM_GETADDR dump: %w", syscall.Errno(-e))
				}
			case unix.RTM_NEWADDR:
				if a, ok := parseAddrMessage(m); ok {
					addrs = append(addrs, a)
				}
			}
		}
	}
}

// compareAddresses orders as upstream does: IPv4 before IPv6, then the
// narrowest scope (global before link), then interface index, then the address
// bytes, so the first address is the one a client should try.
func compareAddresses(a, b Address) int {
	if a.Family != b.Family {
		if a.Family == unix.AF_INET {
			return -1
		}
		if b.Family == unix.AF_INET {
			return 1
		}
	}
	return cmp.Or(
		cmp.Compare(a.scope, b.scope),
		cmp.Compare(a.IfIndex, b.IfIndex),
		bytes.Compare(a.Addr, b.Addr),
	)
}

// parseAddrMessage extracts the address of one RTM_NEWADDR message, or reports
// it is not one to list: deprecated, or of host or nowhere scope (loopback
// addresses, which name the namespace itself). IFA_LOCAL is the interface's own
// address; IFA_ADDRESS is the peer on point-to-point links and the same as
// IFA_LOCAL (or alone) everywhere else.
func parseAddrMessage(m *syscall.NetlinkMessage) (Address, bool) {
	if len(m.Data) < unix.SizeofIfAddrmsg {
		return Address{}, false
	}
	flags, scope := m.Data[2], m.Data[3]
	if flags&unix.IFA_F_DEPRECATED != 0 || scope == unix.RT_SCOPE_HOST || scope == unix.RT_SCOPE_NOWHERE {
		return Address{}, false
	}
	family := int(m.Data[0])
	var size int
	switch family {
	case unix.AF_INET:
		size = 4
	case unix.AF_INET6:
		size = 16
	default:
		return Address{}, false
	}
	attrs, err := syscall.ParseNetlinkRouteAttr(m)
	if err != nil {
		return Address{}, false
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
	addr := cmp.Or(string(local), string(address))
	if len(addr) != size {
		return Address{}, false
	}
	return Address{
		IfIndex: int(binary.NativeEndian.Uint32(m.Data[4:8])),
		Family:  family,
		Addr:    []byte(addr),
		scope:   scope,
	}, true
}
