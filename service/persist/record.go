package persist

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Record is one machine as stored in <dir>/<name>. Zero values mean "absent".
type Record struct {
	Name              string
	UID               uint32 // who registered it (UID=, 258+)
	HasUID            bool   // UID= was present / is to be written
	Unit              string // SCOPE= (historical key name)
	Subgroup          string // SUBGROUP=: upstream reads but never writes it; we write it
	Service           string
	RootDirectory     string // ROOT=
	ID                [16]byte
	Leader            int
	LeaderPIDFDID     uint64
	Supervisor        int
	SupervisorPIDFDID uint64
	Class             string // container or vm
	Realtime          uint64 // µs
	Monotonic         uint64 // µs
	NetIf             []int
	VSockCID          uint32 // 0xFFFFFFFF (VMADDR_CID_ANY) when unknown
	SSHAddress        string
	SSHPrivateKeyPath string
	ControlAddress    string
}

const header = "# This is private data. Do not parse.\n"

// vsockAny is VMADDR_CID_ANY, "no CID". Unlike upstream we do not write it.
const vsockAny = ^uint32(0)

// Encode renders r in upstream's key order; empty values are left out.
func Encode(r Record) []byte {
	return appendEncoded(make([]byte, 0, 512), r)
}

// appendEncoded appends Encode(r) to b, so that Save can reuse a buffer.
func appendEncoded(b []byte, r Record) []byte {
	b = append(b, header...)
	put := func(k, v string) {
		if v != "" {
			b = append(b, k...)
			b = append(b, '=')
			b = appendQuoted(b, v)
			b = append(b, '\n')
		}
	}
	num := func(k string, v uint64) {
		if v != 0 {
			b = append(b, k...)
			b = append(b, '=')
			b = strconv.AppendUint(b, v, 10)
			b = append(b, '\n')
		}
	}
	put("NAME", r.Name)
	if r.HasUID {
		b = append(b, "UID="...)
		b = strconv.AppendUint(b, uint64(r.UID), 10)
		b = append(b, '\n')
	}
	put("SCOPE", r.Unit)
	put("SUBGROUP", r.Subgroup)
	put("SERVICE", r.Service)
	put("ROOT", r.RootDirectory)
	if r.ID != [16]byte{} {
		b = append(b, "ID="...)
		b = hex.AppendEncode(b, r.ID[:])
		b = append(b, '\n')
	}
	num("LEADER", uint64(r.Leader))
	num("LEADER_PIDFDID", r.LeaderPIDFDID)
	num("SUPERVISOR", uint64(r.Supervisor))
	num("SUPERVISOR_PIDFDID", r.SupervisorPIDFDID)
	put("CLASS", r.Class)
	num("REALTIME", r.Realtime)
	num("MONOTONIC", r.Monotonic)
	if len(r.NetIf) > 0 {
		// Unquoted "5 7" as 252 wrote it: 252 and newer readers both split it.
		b = append(b, "NETIF="...)
		for i, n := range r.NetIf {
			if i > 0 {
				b = append(b, ' ')
			}
			b = strconv.AppendInt(b, int64(n), 10)
		}
		b = append(b, '\n')
	}
	if r.VSockCID != 0 && r.VSockCID != vsockAny {
		num("VSOCK_CID", uint64(r.VSockCID))
	}
	put("SSH_ADDRESS", r.SSHAddress)
	put("SSH_PRIVATE_KEY_PATH", r.SSHPrivateKeyPath)
	put("CONTROL_ADDRESS", r.ControlAddress)
	return b
}

// Decode parses a state file named name. It accepts what upstream 252 and newer
// versions write, ignores unknown keys, and names the key of any bad value.
// SCOPE_JOB, the scope's start job that 252 writes, is among the ignored keys:
// nothing waits on a job that belonged to the previous run.
func Decode(name string, data []byte) (Record, error) {
	kv, err := parseEnv(data)
	if err != nil {
		return Record{}, err
	}
	r := Record{Name: kv["NAME"], VSockCID: vsockAny}
	if r.Name != name {
		return Record{}, fmt.Errorf("NAME=%q does not match the file name", r.Name)
	}
	if !ValidMachineName(r.Name) {
		return Record{}, fmt.Errorf("NAME: invalid machine name %q", r.Name)
	}
	r.Class = kv["CLASS"]
	if r.Class != "container" && r.Class != "vm" {
		return Record{}, fmt.Errorf("CLASS: invalid class %q", r.Class)
	}
	r.Unit, r.Subgroup = kv["SCOPE"], kv["SUBGROUP"]
	r.Service, r.RootDirectory = kv["SERVICE"], kv["ROOT"]
	r.SSHAddress, r.SSHPrivateKeyPath, r.ControlAddress = kv["SSH_ADDRESS"], kv["SSH_PRIVATE_KEY_PATH"], kv["CONTROL_ADDRESS"]

	uint := func(key string, bits int) (uint64, error) {
		v, ok := kv[key]
		if !ok || v == "" {
			return 0, nil
		}
		n, err := strconv.ParseUint(v, 10, bits)
		if err != nil {
			return 0, fmt.Errorf("%s: invalid number %q", key, v)
		}
		return n, nil
	}
	var n uint64
	if n, err = uint("LEADER", 31); err != nil {
		return Record{}, err
	}
	if n == 0 {
		return Record{}, fmt.Errorf("LEADER: missing")
	}
	r.Leader = int(n)
	if n, err = uint("SUPERVISOR", 31); err != nil {
		return Record{}, err
	}
	r.Supervisor = int(n)
	if r.LeaderPIDFDID, err = uint("LEADER_PIDFDID", 64); err != nil {
		return Record{}, err
	}
	if r.SupervisorPIDFDID, err = uint("SUPERVISOR_PIDFDID", 64); err != nil {
		return Record{}, err
	}
	if r.Realtime, err = uint("REALTIME", 64); err != nil {
		return Record{}, err
	}
	if r.Monotonic, err = uint("MONOTONIC", 64); err != nil {
		return Record{}, err
	}
	if v, ok := kv["UID"]; ok {
		if n, err = uint("UID", 32); err != nil {
			return Record{}, err
		}
		r.UID, r.HasUID = uint32(n), v != ""
	}
	if _, ok := kv["VSOCK_CID"]; ok {
		if n, err = uint("VSOCK_CID", 32); err != nil {
			return Record{}, err
		}
		if n != 0 {
			r.VSockCID = uint32(n)
		}
	}
	if v := kv["ID"]; v != "" {
		id, err := hex.DecodeString(v)
		if err != nil || len(id) != 16 {
			return Record{}, fmt.Errorf("ID: invalid machine id %q", v)
		}
		copy(r.ID[:], id)
	}
	for _, f := range strings.Fields(kv["NETIF"]) {
		i, err := strconv.Atoi(f)
		if err != nil || i <= 0 {
			return Record{}, fmt.Errorf("NETIF: invalid interface index %q", f)
		}
		r.NetIf = append(r.NetIf, i)
	}
	return r, nil
}
