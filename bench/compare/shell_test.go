package main

import (
	"testing"
	"time"
)

// A machinectl trace, cut down to the lines clientPhases looks for and a few
// it must pass over (an earlier sendmsg, a recvmsg without a descriptor, a
// read that is not the terminal's EIO).
const machinectlTrace = `642   04:43:44.182949 execve("/usr/bin/machinectl", ["machinectl", "--no-pager", "-q", "shell", "bench-shell-debian-ours", "/bin/true"], 0x7fff10da7) = 0
642   04:43:44.190000 sendmsg(3, {msg_iov=[{iov_base="l\1\0\1\0\0\0\0\1\0\0\0m\0\0\0\1\1o\0\25\0\0\0/org/freedesktop/DBus\0\0\0\2\1s\0\24\0\0\0org.freedesktop.DBus\0\0\0\0\3\1s\0\5\0\0\0Hello\0"}]}, MSG_NOSIGNAL) = 128
642   04:43:44.190500 recvmsg(3, {msg_iov=[{iov_base="l\2\1\1"}], msg_controllen=0}, MSG_CMSG_CLOEXEC) = 61
642   04:43:44.191394 sendmsg(3, {msg_iov=[{iov_base="l\1\4\1J\0\0\0\3\0\0\0\255\0\0\0\1\1o\0\31\0\0\0/org/freedesktop/machine1\0\0\0\0\0\0\0\3\1s\0\20\0\0\0OpenMachineShell\0"}]}, MSG_NOSIGNAL) = 266
642   04:43:44.195000 read(5, "x", 1) = 1
642   04:43:44.197791 recvmsg(3, {msg_iov=[{iov_base="l\2\0\1\23\0\0\0"}], msg_control=[{cmsg_len=20, cmsg_level=SOL_SOCKET, cmsg_type=SCM_RIGHTS, cmsg_data=[6]}]}, MSG_CMSG_CLOEXEC) = 24
642   04:43:44.222918 read(6, 0x558c838674b3, 2048) = -1 EIO (Input/output error)
642   04:43:44.223500 close(6) = 0
642   04:43:44.224059 +++ exited with 0 +++
`

func TestClientPhases(t *testing.T) {
	p, err := clientPhases(machinectlTrace)
	if err != nil {
		t.Fatal(err)
	}
	want := [4]time.Duration{8445 * time.Microsecond, 6397 * time.Microsecond, 25127 * time.Microsecond, 1141 * time.Microsecond}
	if p != want {
		t.Errorf("phases %v, want %v", p, want)
	}
	// A shell that never got its terminal has no phases.
	if _, err := clientPhases(machinectlTrace[:len(machinectlTrace)/2]); err == nil {
		t.Error("a cut trace gave phases")
	}
}

func TestShellFlags(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		rounds int
	}{
		{nil, 10},
		{[]string{"-quick"}, 3},
		{[]string{"-quick", "-shell-rounds", "7"}, 7},
		{[]string{"-shell=false"}, 0},
		{[]string{"-shell-rounds", "0"}, 0},
		{[]string{"-duel"}, 0},
	} {
		c, err := parseFlags(tc.args)
		if err != nil || c.shellRounds != tc.rounds {
			t.Errorf("%v: shellRounds %d, %v; want %d", tc.args, c.shellRounds, err, tc.rounds)
		}
	}
	if _, err := parseFlags([]string{"-shell-rounds", "-1"}); err == nil {
		t.Error("-shell-rounds -1 accepted")
	}
}

// The rows exist only when the workload runs, so that -shell=false leaves no
// "not run" rows behind.
func TestShellRowsPlanned(t *testing.T) {
	for _, rounds := range []int{0, 3} {
		b := &bench{cfg: config{shellRounds: rounds}, rep: &report{}}
		b.planShell()
		n := 0
		for _, r := range b.rep.Rows {
			if r.Group == gShell {
				n++
			}
		}
		if want := map[int]int{0: 0, 3: 2}[rounds]; n != want {
			t.Errorf("shellRounds %d: %d shell rows, want %d", rounds, n, want)
		}
	}
}
