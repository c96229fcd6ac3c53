package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// RegisterRequest is a machine to register. Leader, LeaderPID or neither (the
// calling process is then the leader) names the leader.
type RegisterRequest struct {
	Name string
	// ID is the machine id: 32 hex digits or a UUID.
	ID      string
	Service string
	Class   Class
	// Leader is a pidfd of the leader. A pidfd cannot travel in Register, so the
	// client sends its PID and, where the kernel has pidfs, its pidfd id, which
	// makes the daemon refuse a process that merely reuses the PID.
	Leader *os.File
	// LeaderPID is the leader as a plain PID, when Leader is nil.
	LeaderPID int
	// VSockCID is the AF_VSOCK CID of a virtual machine.
	VSockCID          *uint32
	IfIndices         []int
	RootDirectory     string
	SSHAddress        string
	SSHPrivateKeyPath string
	// ControlAddress is the Varlink address of the machine's
	// io.systemd.MachineInstance socket.
	ControlAddress string
	// AllocateUnit asks the daemon to create the scope unit
	// machine-NAME.scope for the leader instead of adopting the leader's unit.
	AllocateUnit                   bool
	AllowInteractiveAuthentication bool
}

type registerParams struct {
	Name                           string     `json:"name"`
	ID                             string     `json:"id,omitempty"`
	Service                        string     `json:"service,omitempty"`
	Class                          Class      `json:"class"`
	Leader                         int        `json:"leader,omitempty"`
	LeaderProcessID                *ProcessID `json:"leaderProcessId,omitempty"`
	RootDirectory                  string     `json:"rootDirectory,omitempty"`
	IfIndices                      []int      `json:"ifIndices,omitempty"`
	VSockCID                       *uint32    `json:"vSockCid,omitempty"`
	SSHAddress                     string     `json:"sshAddress,omitempty"`
	SSHPrivateKeyPath              string     `json:"sshPrivateKeyPath,omitempty"`
	ControlAddress                 string     `json:"controlAddress,omitempty"`
	AllocateUnit                   bool       `json:"allocateUnit,omitempty"`
	AllowInteractiveAuthentication bool       `json:"allowInteractiveAuthentication,omitempty"`
}

// ErrLeaderExited is returned by Register when the pidfd's process has exited.
var ErrLeaderExited = errors.New("client: the leader has exited")

// Register registers a machine. Only the fields set are sent, so a request
// without the fields newer daemons added also works against older ones.
func (c *Client) Register(ctx context.Context, r RegisterRequest) error {
	p := registerParams{
		Name: r.Name, ID: r.ID, Service: r.Service, Class: r.Class,
		Leader: r.LeaderPID, RootDirectory: r.RootDirectory, IfIndices: r.IfIndices,
		VSockCID: r.VSockCID, SSHAddress: r.SSHAddress, SSHPrivateKeyPath: r.SSHPrivateKeyPath,
		ControlAddress: r.ControlAddress, AllocateUnit: r.AllocateUnit,
		AllowInteractiveAuthentication: r.AllowInteractiveAuthentication || c.interactive,
	}
	if r.Leader != nil {
		id, err := PidfdProcess(r.Leader)
		if err != nil {
			return err
		}
		p.Leader, p.LeaderProcessID = 0, &id
	}
	return c.call(ctx, "io.systemd.Machine.Register", p, nil)
}

// PidfdProcess describes the process of a pidfd: its PID in this process's PID
// namespace, from /proc/self/fdinfo, and its pidfd id where pidfds live on pidfs.
func PidfdProcess(pidfd *os.File) (ProcessID, error) {
	fd := int(pidfd.Fd())
	f, err := os.Open(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		return ProcessID{}, err
	}
	defer f.Close()
	pid, found := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Pid:"); ok {
			pid, err = strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return ProcessID{}, fmt.Errorf("client: fdinfo of fd %d: %w", fd, err)
			}
			found = true
		}
	}
	if !found {
		return ProcessID{}, fmt.Errorf("client: fd %d is not a pidfd", fd)
	}
	switch {
	case pid == -1:
		return ProcessID{}, ErrLeaderExited
	case pid <= 0:
		// 0: the process is in no PID namespace this process can see.
		return ProcessID{}, fmt.Errorf("client: the pidfd's process has no PID here")
	}
	id := ProcessID{PID: pid}
	var sfs unix.Statfs_t
	var st unix.Stat_t
	if unix.Fstatfs(fd, &sfs) == nil && int64(sfs.Type) == unix.PID_FS_MAGIC && unix.Fstat(fd, &st) == nil {
		id.PidfdID = st.Ino
	}
	return id, nil
}
