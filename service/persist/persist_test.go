package persist

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func full() Record {
	return Record{
		Name: "web-1.example", UID: 1000, HasUID: true, Unit: `machine-web\x2d1.example.scope`,
		Service:       "systemd-nspawn",
		RootDirectory: `/var/lib/machines/a b "q" $x \ ü`, ID: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		Leader: 4242, LeaderPIDFDID: 987654321, Supervisor: 77, SupervisorPIDFDID: 12, Class: "container",
		Realtime: 1795528692123854, Monotonic: 353894680, NetIf: []int{5, 7}, VSockCID: 3,
		SSHAddress: "vsock/3", SSHPrivateKeyPath: "/run/key", ControlAddress: "unix:/run/x.sock",
	}
}

func TestRoundTrip(t *testing.T) {
	for _, r := range []Record{full(), {Name: "m", Class: "vm", Leader: 1, VSockCID: vsockAny}} {
		got, err := Decode(r.Name, Encode(r))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("round trip:\n got %+v\nwant %+v\nfile:\n%s", got, r, Encode(r))
		}
	}
}

func TestEncodeFormat(t *testing.T) {
	s := string(Encode(Record{Name: "a", HasUID: true, Class: "container", Leader: 9, NetIf: []int{5, 7}, VSockCID: vsockAny, Service: "plain"}))
	want := "# This is private data. Do not parse.\nNAME=a\nUID=0\nSERVICE=plain\nLEADER=9\nCLASS=container\nNETIF=5 7\n"
	if s != want {
		t.Errorf("encoded:\n%s\nwant:\n%s", s, want)
	}
}

// A file as Debian 12's machined 252 writes it.
func TestDecode252(t *testing.T) {
	file := "# This is private data. Do not parse.\nNAME=ns1\nSCOPE=peer-ns1.scope\nSERVICE=svc-ns\nROOT=/var/lib/machines/a\\x20b\\303\\251\nID=112233445566778899aabbccddeeff01\nLEADER=12842\nCLASS=container\nREALTIME=1795528692123854\nMONOTONIC=353894680\nNETIF=7 9\n"
	r, err := Decode("ns1", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if r.Unit != "peer-ns1.scope" || r.RootDirectory != "/var/lib/machines/a bé" || r.Leader != 12842 ||
		!reflect.DeepEqual(r.NetIf, []int{7, 9}) || r.HasUID || r.VSockCID != vsockAny || r.ID[0] != 0x11 {
		t.Errorf("decoded %+v", r)
	}
}

// 252 records the scope's start job; the key still loads, and is not written back.
func TestDecodeIgnoresScopeJob(t *testing.T) {
	file := "NAME=ns1\nSCOPE=machine-ns1.scope\nSCOPE_JOB=/org/freedesktop/systemd1/job/42\nLEADER=12842\nCLASS=container\n"
	r, err := Decode("ns1", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if r.Unit != "machine-ns1.scope" {
		t.Errorf("decoded %+v", r)
	}
	if out := string(Encode(r)); strings.Contains(out, "SCOPE_JOB") {
		t.Errorf("SCOPE_JOB written back:\n%s", out)
	}
}

// A file in the newest format, quoted values and all.
func TestDecodeNewest(t *testing.T) {
	file := "# This is private data. Do not parse.\nNAME=vm1\nUID=0\nSCOPE=\"machine-vm1.scope\"\nSERVICE='vmspawn'\nLEADER=100\nLEADER_PIDFDID=4096\nCLASS=vm\nNETIF=\" 5 7\"\nVSOCK_CID=4294967295\nSSH_ADDRESS=\"vsock/9\"\nUNKNOWN_FUTURE_KEY=1\n"
	r, err := Decode("vm1", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if r.Unit != "machine-vm1.scope" || r.Service != "vmspawn" || !r.HasUID || r.LeaderPIDFDID != 4096 ||
		!reflect.DeepEqual(r.NetIf, []int{5, 7}) || r.VSockCID != vsockAny || r.SSHAddress != "vsock/9" {
		t.Errorf("decoded %+v", r)
	}
}

func TestDecodeErrors(t *testing.T) {
	for name, tc := range map[string]struct{ file, key string }{
		"name mismatch": {"NAME=other\nCLASS=vm\nLEADER=1\n", "NAME"},
		"bad name":      {"NAME=a_b\nCLASS=vm\nLEADER=1\n", "NAME"},
		"no class":      {"NAME=x\nLEADER=1\n", "CLASS"},
		"bad class":     {"NAME=x\nCLASS=pod\nLEADER=1\n", "CLASS"},
		"no leader":     {"NAME=x\nCLASS=vm\n", "LEADER"},
		"bad leader":    {"NAME=x\nCLASS=vm\nLEADER=-3\n", "LEADER"},
		"bad id":        {"NAME=x\nCLASS=vm\nLEADER=2\nID=zz\n", "ID"},
		"bad netif":     {"NAME=x\nCLASS=vm\nLEADER=2\nNETIF=a\n", "NETIF"},
		"bad quote":     {"NAME=x\nCLASS=vm\nLEADER=2\nSERVICE=\"open\n", "SERVICE"},
		"no assignment": {"NAME=x\ngarbage\n", "line 2"},
		"control char":  {"NAME=x\nCLASS=vm\nLEADER=2\nROOT=/a\\nb\n", "ROOT"},
		"octal control": {"NAME=x\nCLASS=vm\nLEADER=2\nROOT=/a\\001b\n", "ROOT"},
		"short octal":   {"NAME=x\nCLASS=vm\nLEADER=2\nROOT=/a\\30\n", "ROOT"},
		"huge uid":      {"NAME=x\nCLASS=vm\nLEADER=2\nUID=99999999999\n", "UID"},
	} {
		fileName := "x"
		if strings.HasPrefix(tc.file, "NAME=a_b") {
			fileName = "a_b"
		}
		_, err := Decode(fileName, []byte(tc.file))
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: error %v should name %s", name, err, tc.key)
		}
	}
}

func TestDir(t *testing.T) {
	d := ensuredDir(t)
	r := full()
	r.Name, r.Unit = "web", "machine-web.scope"
	if err := d.Save(r); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(d.Path, "web"))
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode())
	}
	if target, err := os.Readlink(filepath.Join(d.Path, "unit:machine-web.scope")); err != nil || target != "web" {
		t.Errorf("unit link %q %v", target, err)
	}
	os.WriteFile(filepath.Join(d.Path, "broken"), []byte("NAME=broken\nCLASS=x\n"), 0o644)
	os.WriteFile(filepath.Join(d.Path, "big"), []byte(strings.Repeat("#", MaxFileSize+1)), 0o644)
	os.WriteFile(filepath.Join(d.Path, ".#web123"), []byte("half"), 0o644)
	recs, errs := d.Load()
	if len(recs) != 1 || recs[0].Name != "web" || len(errs) != 2 {
		t.Errorf("Load: %d records, errors %v", len(recs), errs)
	}
	if _, err := os.Stat(filepath.Join(d.Path, ".#web123")); !os.IsNotExist(err) {
		t.Error("stale temp file kept")
	}
	// Another machine's link is not removed with ours.
	os.Remove(filepath.Join(d.Path, "unit:machine-web.scope"))
	os.Symlink("other", filepath.Join(d.Path, "unit:machine-web.scope"))
	if err := d.Remove("web", "machine-web.scope"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(d.Path, "unit:machine-web.scope")); err != nil {
		t.Error("foreign unit link removed")
	}
	if _, err := os.Stat(filepath.Join(d.Path, "web")); !os.IsNotExist(err) {
		t.Error("record not removed")
	}
	if err := d.Remove("web", ""); err != nil {
		t.Errorf("removing twice: %v", err)
	}
}

// A unit link that exists (a re-registration under the same unit, a crash's
// leftovers) is replaced, never left pointing at the old machine.
func TestDirUnitLinkReplacedAndRemoved(t *testing.T) {
	d := ensuredDir(t)
	link := filepath.Join(d.Path, "unit:machine-a.scope")
	os.Symlink("old", link)
	os.Symlink("stale", filepath.Join(d.Path, ".#link:new"))
	r := full()
	r.Name, r.Unit = "new", "machine-a.scope"
	if err := d.Save(r); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(link); err != nil || target != "new" {
		t.Fatalf("unit link -> %q, %v; want it replaced to point at new", target, err)
	}
	if _, err := os.Lstat(filepath.Join(d.Path, ".#link:new")); !os.IsNotExist(err) {
		t.Errorf("temp link left behind: %v", err)
	}
	if err := d.Remove("new", "machine-a.scope"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("own unit link kept after Remove: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(Encode(full())))
	f.Add([]byte("NAME=x\nCLASS=vm\nLEADER=2\nSERVICE=\"a\\\"b\"\nROOT=a\\x41\n"))
	f.Add([]byte("NAME=x\nCLASS=container\nLEADER=2\nNETIF=\" 5 7\"\nID=00112233445566778899aabbccddeeff\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Decode("x", data)
		if err != nil {
			return
		}
		back, err := Decode("x", Encode(r))
		if err != nil {
			t.Fatalf("re-decode: %v\n%s", err, Encode(r))
		}
		if !reflect.DeepEqual(back, r) {
			t.Fatalf("round trip differs:\n%+v\n%+v", r, back)
		}
	})
}

func TestValidMachineName(t *testing.T) {
	good := []string{"a", "a.b-c", "rawhide", "fedora-40", "a.b", "A9", "x-y.z-w", strings.Repeat("a", 64)}
	bad := []string{"", ".host", "a_b", "-a", "a-", "a..b", ".a", "a.", "a b", "a/b", "ä", strings.Repeat("a", 65), "a.-b", "a-.b"}
	for _, n := range good {
		if !ValidMachineName(n) {
			t.Errorf("%q should be valid", n)
		}
	}
	for _, n := range bad {
		if ValidMachineName(n) {
			t.Errorf("%q should be invalid", n)
		}
	}
}

// Save and Load agree on one bound: a record Save would write is one Load reads
// back, and Save refuses the rest without leaving a file behind.
func TestSaveRefusesOversizedRecord(t *testing.T) {
	d := ensuredDir(t)
	r := full()
	r.Name = "big"
	r.NetIf = make([]int, MaxFileSize/2)
	for i := range r.NetIf {
		r.NetIf[i] = 1
	}
	if err := d.Save(r); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Save of a %d-byte record = %v, want ErrTooLarge", len(Encode(r)), err)
	}
	if ents, _ := os.ReadDir(d.Path); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}

	// The largest record Save accepts loads back.
	r = Record{Name: "edge", Class: "container", Leader: 9, VSockCID: vsockAny, Service: "a"}
	r.Service = strings.Repeat("a", 1+MaxFileSize-len(Encode(r)))
	if n := len(Encode(r)); n != MaxFileSize {
		t.Fatalf("edge record is %d bytes, want %d", n, MaxFileSize)
	}
	if err := d.Save(r); err != nil {
		t.Fatal(err)
	}
	recs, errs := d.Load()
	if len(recs) != 1 || len(errs) != 0 {
		t.Errorf("Load of a %d-byte file: %d records, errors %v", MaxFileSize, len(recs), errs)
	}
}

// A file over the bound found at restore is reported and removed with its unit
// link, not skipped and left to be skipped again on every restart.
func TestLoadRemovesOversizedFile(t *testing.T) {
	d := ensuredDir(t)
	r := full()
	r.Name, r.Unit = "huge", "machine-huge.scope"
	if err := d.Save(r); err != nil {
		t.Fatal(err)
	}
	pad := append(Encode(r), []byte("# "+strings.Repeat("x", MaxFileSize)+"\n")...)
	if err := os.WriteFile(filepath.Join(d.Path, "huge"), pad, 0o644); err != nil {
		t.Fatal(err)
	}
	recs, errs := d.Load()
	if len(recs) != 0 || len(errs) != 1 || !errors.Is(errs[0], ErrTooLarge) {
		t.Errorf("Load: %d records, errors %v", len(recs), errs)
	}
	if _, err := os.Lstat(filepath.Join(d.Path, "huge")); !os.IsNotExist(err) {
		t.Error("oversized file kept")
	}
	if _, err := os.Lstat(filepath.Join(d.Path, "unit:machine-huge.scope")); !os.IsNotExist(err) {
		t.Error("unit link of the oversized file kept")
	}
}

// ensuredDir is an empty state directory, made.
func ensuredDir(t *testing.T) Dir {
	t.Helper()
	d := Dir{Path: filepath.Join(t.TempDir(), "machines")}
	if err := d.Ensure(); err != nil {
		t.Fatal(err)
	}
	return d
}
