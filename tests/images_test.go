package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// machinectl 252 drives every image verb through the D-Bus shim, on an ext4
// pool; each change is checked on the file system.
func TestImagesMachinectl(t *testing.T) {
	pool := newPoolDir(t)
	writeOSTree(t, filepath.Join(pool, "alpha"), "Alpha OS 1", "alphahost")
	mustRun(t, "truncate", "-s", "1M", filepath.Join(pool, "beta.raw"))
	if err := os.Mkdir(filepath.Join(pool, ".hidden"), 0o755); err != nil {
		t.Fatal(err)
	}
	d, bus := startBusDaemon(t, "--units", "none", "--image-pool", pool)
	mctl := func(args ...string) (string, string, int) {
		t.Helper()
		return inSystemdNS(t, d, bus, -1, "machinectl", append([]string{"--no-pager", "--no-ask-password"}, args...)...)
	}
	mustMctl := func(args ...string) string {
		t.Helper()
		out, errOut, code := mctl(args...)
		if code != 0 {
			t.Fatalf("machinectl %v: %d %s", args, code, errOut)
		}
		return out
	}

	out := mustMctl("list-images", "--no-legend")
	for _, want := range []string{"alpha", "beta"} {
		if !hasLineStarting(out, want+" ") {
			t.Errorf("list-images lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, ".hidden") || strings.Contains(out, ".host") {
		t.Errorf("list-images shows hidden images without --all:\n%s", out)
	}
	out = mustMctl("list-images", "--all", "--no-legend")
	for _, want := range []string{".hidden", ".host", "alpha", "beta"} {
		if !hasLineStarting(out, want+" ") {
			t.Errorf("list-images --all lacks %s:\n%s", want, out)
		}
	}

	out = mustMctl("image-status", "alpha")
	for _, want := range []string{"alpha", "Path: " + filepath.Join(pool, "alpha"), "Type: directory", "Hostname: alphahost", "OS: Alpha OS 1", "Machine ID: 0123456789abcdef0123456789abcdef"} {
		if !strings.Contains(out, want) {
			t.Errorf("image-status lacks %q:\n%s", want, out)
		}
	}
	out = mustMctl("show-image", "beta")
	for _, want := range []string{"Name=beta\n", "Path=" + filepath.Join(pool, "beta.raw") + "\n", "Type=raw\n", "ReadOnly=no\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("show-image beta lacks %q:\n%s", want, out)
		}
	}
	if out := mustMctl("show-image"); !strings.Contains(out, "PoolPath="+pool+"\n") {
		t.Errorf("show-image (manager) lacks the pool:\n%s", out)
	}

	// clone, plain and read-only.
	mustMctl("clone", "alpha", "gamma")
	if b, err := os.ReadFile(filepath.Join(pool, "gamma/srv/data")); err != nil || string(b) != "payload\n" {
		t.Errorf("clone gamma: %q %v", b, err)
	}
	if immutable(t, filepath.Join(pool, "gamma")) {
		t.Error("plain clone is read-only")
	}
	mustMctl("clone", "--read-only", "alpha", "delta")
	if !immutable(t, filepath.Join(pool, "delta")) {
		t.Error("read-only clone is not immutable")
	}
	if out := mustMctl("show-image", "delta"); !strings.Contains(out, "ReadOnly=yes\n") {
		t.Errorf("show-image delta:\n%s", out)
	}

	// rename, read-only yes/no, remove.
	mustMctl("rename", "gamma", "epsilon")
	if exists(filepath.Join(pool, "gamma")) || !exists(filepath.Join(pool, "epsilon/srv/data")) {
		t.Error("rename did not move the tree")
	}
	mustMctl("read-only", "epsilon", "yes")
	if !immutable(t, filepath.Join(pool, "epsilon")) {
		t.Error("read-only yes: not immutable")
	}
	mustMctl("read-only", "epsilon", "no")
	if immutable(t, filepath.Join(pool, "epsilon")) {
		t.Error("read-only no: still immutable")
	}
	mustMctl("read-only", "beta", "yes")
	if fi, err := os.Stat(filepath.Join(pool, "beta.raw")); err != nil || fi.Mode().Perm()&0o222 != 0 {
		t.Errorf("read-only raw image keeps write bits: %v %v", fi.Mode(), err)
	}
	mustMctl("read-only", "beta", "no")
	mustMctl("remove", "epsilon", "delta")
	if exists(filepath.Join(pool, "epsilon")) || exists(filepath.Join(pool, "delta")) {
		t.Error("remove left the trees")
	}

	// set-limit off btrfs is refused as upstream words it.
	if _, errOut, code := mctl("set-limit", "alpha", "1G"); code == 0 || !strings.Contains(errOut, "Operation not supported") {
		t.Errorf("set-limit on ext4: %d %s", code, errOut)
	}
	if _, errOut, code := mctl("set-limit", "1G"); code == 0 || !strings.Contains(errOut, "Quota is only supported on btrfs") {
		t.Errorf("set-limit (pool) on ext4: %d %s", code, errOut)
	}

	// nobody may list and look, not change.
	if out, errOut, code := inSystemdNS(t, d, bus, 65534, "machinectl", "--no-pager", "list-images", "--no-legend"); code != 0 || !hasLineStarting(out, "alpha ") {
		t.Errorf("nobody's list-images: %d %s\n%s", code, errOut, out)
	}
	for _, args := range [][]string{{"remove", "alpha"}, {"rename", "alpha", "x"}, {"read-only", "alpha"}, {"clone", "alpha", "x"}, {"clean", "--all"}} {
		if _, errOut, code := inSystemdNS(t, d, bus, 65534, "machinectl", append([]string{"--no-pager", "--no-ask-password"}, args...)...); code == 0 || !strings.Contains(errOut, "ccess denied") {
			t.Errorf("nobody's machinectl %v: %d %s", args, code, errOut)
		}
	}
	if !exists(filepath.Join(pool, "alpha/srv/data")) || exists(filepath.Join(pool, "x")) {
		t.Error("nobody changed the pool")
	}

	// clean: hidden images only, then all (but .host).
	mustMctl("clean")
	if exists(filepath.Join(pool, ".hidden")) || !exists(filepath.Join(pool, "alpha")) {
		t.Error("clean (hidden) removed the wrong images")
	}
	mustMctl("clean", "--all")
	if exists(filepath.Join(pool, "alpha")) || exists(filepath.Join(pool, "beta.raw")) {
		t.Error("clean --all left images")
	}
	if out := mustMctl("list-images", "--all", "--no-legend"); !hasLineStarting(out, ".host ") {
		t.Errorf("after clean --all:\n%s", out)
	}
}

func hasLineStarting(out, prefix string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			return true
		}
	}
	return false
}

// varlinkJSON decodes the replies varlinkctl printed, one object each.
func varlinkJSON(t *testing.T, out string) []map[string]any {
	t.Helper()
	var all []map[string]any
	dec := json.NewDecoder(strings.NewReader(strings.ReplaceAll(out, "\x1e", "")))
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("varlinkctl output: %v\n%s", err, out)
		}
		all = append(all, m)
	}
	return all
}

// varlinkctl 257 drives io.systemd.MachineImage, through the machine socket
// and through its io.systemd.MachineImage link.
func TestImagesVarlink(t *testing.T) {
	pool := newPoolDir(t)
	writeOSTree(t, filepath.Join(pool, "alpha"), "Alpha OS 1", "alphahost")
	mustRun(t, "truncate", "-s", "1M", filepath.Join(pool, "beta.raw"))
	os.Mkdir(filepath.Join(pool, ".hidden"), 0o755)
	d := startDaemon(t, "--units", "none", "--image-pool", pool)
	link := filepath.Join(d.dir, "systemd/machine/io.systemd.MachineImage")
	if target, err := filepath.EvalSymlinks(link); err != nil || target != d.sock() {
		t.Fatalf("image socket link leads to %q (%v), want the machine socket %s", target, err, d.sock())
	}
	call := func(args ...string) string {
		t.Helper()
		out, errOut, code := varlinkctl(t, append([]string{"call"}, args...)...)
		if code != 0 {
			t.Fatalf("varlinkctl %v: %d %s", args, code, errOut)
		}
		return out
	}
	const m = "io.systemd.MachineImage."

	out, _, code := varlinkctl(t, "info", link)
	if code != 0 || !strings.Contains(out, "io.systemd.MachineImage") {
		t.Errorf("GetInfo lacks io.systemd.MachineImage: %s", out)
	}
	if out, _, code := varlinkctl(t, "introspect", d.sock(), "io.systemd.MachineImage"); code != 0 || !strings.Contains(out, "method CleanPool(") {
		t.Errorf("introspect: %d\n%s", code, out)
	}

	// List --more, without and with metadata.
	list := varlinkJSON(t, call("--more", link, m+"List", "{}"))
	names := map[string]map[string]any{}
	for _, e := range list {
		names[e["name"].(string)] = e
	}
	for _, n := range []string{".host", ".hidden", "alpha", "beta"} {
		if names[n] == nil {
			t.Errorf("List lacks %s: %v", n, list)
		}
	}
	if a := names["alpha"]; a["type"] != "directory" || a["class"] != "machine" || a["path"] != filepath.Join(pool, "alpha") || a["hostname"] != nil {
		t.Errorf("alpha without metadata: %v", a)
	}
	if b := names["beta"]; b["type"] != "raw" || b["limit"] != float64(1<<20) {
		t.Errorf("beta: %v", b)
	}
	// A raw image of zeros has no file system to read: graceful leaves its
	// metadata out, yes fails.
	if _, errOut, code := varlinkctl(t, "call", d.sock(), m+"List", `{"name":"beta","acquireMetadata":"yes"}`); code == 0 {
		t.Errorf("metadata of an empty raw image: %s", errOut)
	}
	list = varlinkJSON(t, call(d.sock(), m+"List", `{"name":"alpha","acquireMetadata":"yes"}`))
	list = append(list, varlinkJSON(t, call("--more", d.sock(), m+"List", `{"acquireMetadata":"graceful"}`))...)
	for _, e := range list {
		if e["name"] == "alpha" {
			if e["hostname"] != "alphahost" || e["machineId"] != "0123456789abcdef0123456789abcdef" || !strings.Contains(fmtJSON(e["OSRelease"]), "PRETTY_NAME=Alpha OS 1") || !strings.Contains(fmtJSON(e["machineInfo"]), "PRETTY_HOSTNAME=Pretty alphahost") {
				t.Errorf("alpha with metadata: %v", e)
			}
		}
	}
	// nobody lists too, without the metadata it may not inspect.
	out, errOut, code := varlinkctlAs(t, nobodyCred, "call", "--more", d.sock(), m+"List", `{"acquireMetadata":"yes"}`)
	if code != 0 || !strings.Contains(out, `"alpha"`) || strings.Contains(out, "alphahost") {
		t.Errorf("nobody's List: %d %s\n%s", code, errOut, out)
	}

	// Clone, Update (rename, read-only), Remove.
	call(link, m+"Clone", `{"name":"alpha","newName":"gamma"}`)
	if !exists(filepath.Join(pool, "gamma/srv/data")) {
		t.Error("Clone made no tree")
	}
	call(link, m+"Clone", `{"name":"alpha","newName":"delta","readOnly":true}`)
	if !immutable(t, filepath.Join(pool, "delta")) {
		t.Error("read-only Clone is not immutable")
	}
	call(link, m+"Update", `{"name":"gamma","newName":"epsilon","readOnly":true}`)
	if exists(filepath.Join(pool, "gamma")) || !immutable(t, filepath.Join(pool, "epsilon")) {
		t.Error("Update did not rename and mark read-only")
	}
	call(link, m+"Update", `{"name":"epsilon","readOnly":false}`)
	if immutable(t, filepath.Join(pool, "epsilon")) {
		t.Error("Update readOnly false left it immutable")
	}
	call(link, m+"Remove", `{"name":"epsilon"}`)
	call(link, m+"Remove", `{"name":"delta"}`)
	if exists(filepath.Join(pool, "epsilon")) || exists(filepath.Join(pool, "delta")) {
		t.Error("Remove left the trees")
	}

	// CleanPool --more streams what it removed; nothing left to remove is NoSuchImage.
	out = call("--more", link, m+"CleanPool", `{"mode":"hidden"}`)
	if got := varlinkJSON(t, out); len(got) != 1 || got[0]["name"] != ".hidden" {
		t.Errorf("CleanPool hidden: %v", got)
	}
	if _, errOut, code := varlinkctl(t, "call", "--more", link, m+"CleanPool", `{"mode":"hidden"}`); code == 0 || !strings.Contains(errOut, m+"NoSuchImage") {
		t.Errorf("CleanPool with nothing to remove: %d %s", code, errOut)
	}
	out = call("--more", link, m+"CleanPool", `{"mode":"all"}`)
	if got := varlinkJSON(t, out); len(got) != 2 {
		t.Errorf("CleanPool all: %v", got)
	}
	if exists(filepath.Join(pool, "alpha")) || exists(filepath.Join(pool, "beta.raw")) {
		t.Error("CleanPool all left images")
	}
}

func fmtJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Bad input gets its named error on both transports: names no image can have,
// a taken target, .host and vendor images, an unknown clean mode, limits off
// btrfs, and nobody's changes and metadata reads.
func TestImagesBadInput(t *testing.T) {
	pool := newPoolDir(t)
	writeOSTree(t, filepath.Join(pool, "alpha"), "Alpha OS 1", "alphahost")
	writeOSTree(t, filepath.Join(pool, "beta"), "Beta OS", "betahost")
	// A vendor image: found under /usr.
	vendor, err := os.MkdirTemp("/usr/local/lib", "machined-vendor-images-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(vendor) })
	writeOSTree(t, filepath.Join(vendor, "shipped"), "Vendor OS", "vendorhost")
	d, bus := startBusDaemon(t, "--units", "none", "--image-pool", pool, "--image-search-path", pool+":"+vendor)
	c := dbusConn(t, bus)
	const m = "io.systemd.MachineImage."
	vcall := func(cred *syscall.Credential, method, params string) string {
		t.Helper()
		out, errOut, code := varlinkctlAs(t, cred, "call", d.sock(), m+method, params)
		if code == 0 {
			t.Errorf("%s %s succeeded: %s", method, params, out)
		}
		return out + errOut
	}
	wantV := func(cred *syscall.Credential, method, params string, wants ...string) {
		t.Helper()
		got := vcall(cred, method, params)
		for _, w := range wants {
			if !strings.Contains(got, w) {
				t.Errorf("Varlink %s %s: %s, want %s", method, params, got, w)
			}
		}
	}
	wantD := func(name, msg, method string, args ...any) {
		t.Helper()
		err := managerCall(t, c, method, args...).Err
		if got := dbusErrorName(err); got != name || !strings.Contains(fmtErr(err), msg) {
			t.Errorf("D-Bus %s%v: %s %v, want %s %q", method, args, got, err, name, msg)
		}
	}

	// Names.
	for _, bad := range []string{"a/b", "..", ".#lock", "x\x01y", strings.Repeat("n", 256)} {
		js, _ := json.Marshal(bad)
		wantV(nil, "List", `{"name":`+string(js)+`}`, "InvalidParameter", `"name"`)
		wantV(nil, "Remove", `{"name":`+string(js)+`}`, "InvalidParameter", `"name"`)
		wantV(nil, "Clone", `{"name":"alpha","newName":`+string(js)+`}`, "InvalidParameter", `"newName"`)
		wantV(nil, "Update", `{"name":"alpha","newName":`+string(js)+`}`, "InvalidParameter", `"newName"`)
		wantD("org.freedesktop.DBus.Error.InvalidArgs", "Image name '"+bad+"' is invalid.", "RemoveImage", bad)
		wantD("org.freedesktop.DBus.Error.InvalidArgs", "Image name '"+bad+"' is invalid.", "RenameImage", "alpha", bad)
		wantD("org.freedesktop.DBus.Error.InvalidArgs", "Image name '"+bad+"' is invalid.", "CloneImage", "alpha", bad, false)
		wantD("org.freedesktop.machine1.NoSuchImage", "No image", "GetImage", bad)
	}
	wantV(nil, "Remove", `{"name":"nope"}`, m+"NoSuchImage")
	wantD("org.freedesktop.machine1.NoSuchImage", "No image 'nope' known", "RemoveImage", "nope")
	wantD("org.freedesktop.machine1.NoSuchImage", "No image 'nope' known", "GetImage", "nope")

	// A taken target.
	wantV(nil, "Clone", `{"name":"alpha","newName":"beta"}`, "io.systemd.System", "EEXIST")
	wantV(nil, "Update", `{"name":"alpha","newName":"beta"}`, "io.systemd.System", "EEXIST")
	wantV(nil, "Update", `{"name":"alpha","newName":"alpha"}`, "io.systemd.System", "EEXIST")
	wantD("org.freedesktop.DBus.Error.FileExists", "", "CloneImage", "alpha", "beta", false)
	wantD("org.freedesktop.DBus.Error.FileExists", "", "RenameImage", "alpha", "beta")

	// .host and vendor images are never changed.
	for _, img := range []string{".host", "shipped"} {
		wantV(nil, "Remove", `{"name":"`+img+`"}`, "io.systemd.System", "EROFS")
		wantV(nil, "Update", `{"name":"`+img+`","newName":"x"}`, "io.systemd.System", "EROFS")
		wantD("System.Error.EROFS", "", "RemoveImage", img)
		wantD("System.Error.EROFS", "", "RenameImage", img, "x")
		wantD("System.Error.EROFS", "", "MarkImageReadOnly", img, true)
	}
	if !exists(filepath.Join(vendor, "shipped/srv/data")) {
		t.Error("the vendor image was changed")
	}

	// Unknown clean mode; limits off btrfs.
	wantV(nil, "CleanPool", `{"mode":"some"}`, "InvalidParameter", `"mode"`)
	wantD("org.freedesktop.DBus.Error.InvalidArgs", "Unknown mode 'some'.", "CleanPool", "some")
	wantV(nil, "SetPoolLimit", `{"limit":1000000}`, m+"NotSupported")
	wantV(nil, "Update", `{"name":"alpha","limit":1000000}`, "io.systemd.System", `"errno":95`)
	wantD("org.freedesktop.DBus.Error.NotSupported", "Quota is only supported on btrfs.", "SetPoolLimit", uint64(1<<30))
	wantD("org.freedesktop.DBus.Error.NotSupported", "Operation not supported", "SetImageLimit", "alpha", uint64(1<<30))

	// nobody: no changes, no metadata; lookups stay open.
	for method, params := range map[string]string{
		"Remove":       `{"name":"alpha"}`,
		"Clone":        `{"name":"alpha","newName":"x"}`,
		"Update":       `{"name":"alpha","readOnly":true}`,
		"SetPoolLimit": `{"limit":1}`,
	} {
		wantV(nobodyCred, method, params, "org.varlink.service.PermissionDenied")
	}
	if _, errOut, code := varlinkctlAs(t, nobodyCred, "call", "--more", d.sock(), m+"CleanPool", `{"mode":"all"}`); code == 0 || !strings.Contains(errOut, "PermissionDenied") {
		t.Errorf("nobody's CleanPool: %d %s", code, errOut)
	}
	for _, args := range [][]string{
		{"RemoveImage", "s", "alpha"},
		{"RenameImage", "ss", "alpha", "x"},
		{"CloneImage", "ssb", "alpha", "x", "false"},
		{"MarkImageReadOnly", "sb", "alpha", "true"},
		{"SetImageLimit", "st", "alpha", "1"},
		{"SetPoolLimit", "t", "1"},
		{"CleanPool", "s", "all"},
		{"GetImageOSRelease", "s", "alpha"},
		{"GetImageHostname", "s", "alpha"},
	} {
		call := append([]string{"call", m1Dest, m1Path, m1Manager}, args...)
		if _, errOut, code := busctl(t, bus, nobodyCred, call...); code == 0 || !strings.Contains(errOut, "ccess denied") {
			t.Errorf("nobody's %s: %d %s", args[0], code, errOut)
		}
	}
	if out, errOut, code := busctl(t, bus, nobodyCred, "call", m1Dest, m1Path, m1Manager, "ListImages"); code != 0 || !strings.Contains(out, `"alpha"`) {
		t.Errorf("nobody's ListImages: %d %s %s", code, errOut, out)
	}
	if out, errOut, code := busctl(t, bus, nobodyCred, "call", m1Dest, m1Path, m1Manager, "GetImage", "s", "alpha"); code != 0 || !strings.Contains(out, "/org/freedesktop/machine1/image/alpha") {
		t.Errorf("nobody's GetImage: %d %s %s", code, errOut, out)
	}
	for _, img := range []string{"alpha", "beta"} {
		if !exists(filepath.Join(pool, img, "srv/data")) {
			t.Errorf("%s was changed", img)
		}
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// On btrfs: subvolume images, clones that are snapshots (read-only flag when
// asked), per-image and pool limits through qgroups, all read back through
// both transports and checked with btrfs-progs.
func TestImagesBtrfs(t *testing.T) {
	pool := newBtrfsPool(t)
	sub := filepath.Join(pool, "sv")
	mustRun(t, "btrfs", "subvolume", "create", sub)
	writeOSTree(t, sub, "Sub OS", "subhost")
	d, bus := startBusDaemon(t, "--units", "none", "--image-pool", pool)
	mctl := func(args ...string) string {
		t.Helper()
		out, errOut, code := inSystemdNS(t, d, bus, -1, "machinectl", append([]string{"--no-pager", "--no-ask-password"}, args...)...)
		if code != 0 {
			t.Fatalf("machinectl %v: %d %s", args, code, errOut)
		}
		return out
	}
	subvolRO := func(path string) string {
		return strings.TrimSpace(mustRun(t, "btrfs", "property", "get", "-ts", path, "ro"))
	}

	if out := mctl("show-image", "sv"); !strings.Contains(out, "Type=subvolume\n") {
		t.Errorf("show-image sv:\n%s", out)
	}
	mctl("clone", "sv", "snap")
	mustRun(t, "btrfs", "subvolume", "show", filepath.Join(pool, "snap"))
	if ro := subvolRO(filepath.Join(pool, "snap")); ro != "ro=false" {
		t.Errorf("plain clone: %s", ro)
	}
	mctl("clone", "--read-only", "sv", "snapro")
	if ro := subvolRO(filepath.Join(pool, "snapro")); ro != "ro=true" {
		t.Errorf("read-only clone: %s", ro)
	}
	mctl("read-only", "snap", "yes")
	if ro := subvolRO(filepath.Join(pool, "snap")); ro != "ro=true" {
		t.Errorf("read-only yes: %s", ro)
	}
	mctl("read-only", "snap", "no")
	if ro := subvolRO(filepath.Join(pool, "snap")); ro != "ro=false" {
		t.Errorf("read-only no: %s", ro)
	}

	// Limits: one image's, then the pool's.
	mctl("set-limit", "sv", "64M")
	if out := mctl("show-image", "sv"); !strings.Contains(out, "Limit=67108864\n") {
		t.Errorf("show-image after set-limit:\n%s", out)
	}
	if out := mustRun(t, "btrfs", "qgroup", "show", "-r", "--raw", pool); !strings.Contains(out, "67108864") {
		t.Errorf("qgroup limit not set:\n%s", out)
	}
	out, errOut, code := varlinkctl(t, "call", d.sock(), "io.systemd.MachineImage.Update", `{"name":"snap","limit":33554432}`)
	if code != 0 {
		t.Fatalf("Update limit: %s %s", out, errOut)
	}
	list := varlinkJSON(t, mustVarlink(t, "call", d.sock(), "io.systemd.MachineImage.List", `{"name":"snap"}`))
	if len(list) != 1 || list[0]["limit"] != float64(33554432) || list[0]["type"] != "subvolume" {
		t.Errorf("List snap after Update limit: %v", list)
	}
	mctl("set-limit", "200M")
	if out := mctl("show"); !strings.Contains(out, "PoolLimit=209715200\n") || strings.Contains(out, "PoolUsage=18446744073709551615") {
		t.Errorf("show after the pool limit:\n%s", out)
	}
	mustVarlink(t, "call", d.sock(), "io.systemd.MachineImage.SetPoolLimit", `{"limit":314572800}`)
	if out := mctl("show"); !strings.Contains(out, "PoolLimit=314572800\n") {
		t.Errorf("show after SetPoolLimit:\n%s", out)
	}

	mctl("remove", "snap", "snapro")
	if exists(filepath.Join(pool, "snap")) || exists(filepath.Join(pool, "snapro")) {
		t.Error("remove left the subvolumes")
	}
	if out := mustRun(t, "btrfs", "subvolume", "list", pool); strings.Contains(out, "snap") {
		t.Errorf("subvolumes left:\n%s", out)
	}
}

func mustVarlink(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := varlinkctl(t, args...)
	if code != 0 {
		t.Fatalf("varlinkctl %v: %d %s", args, code, errOut)
	}
	return out
}

// A raw GPT image built here shows the OS and hostname inside it.
func TestImagesRawGPT(t *testing.T) {
	needRoot(t)
	pool := newPoolDir(t)
	tree := t.TempDir()
	writeOSTree(t, tree, "Disk OS 7", "diskhost")
	gptImage(t, filepath.Join(pool, "disk.raw"), tree)
	d, bus := startBusDaemon(t, "--units", "none", "--image-pool", pool)
	out, errOut, code := inSystemdNS(t, d, bus, -1, "machinectl", "--no-pager", "image-status", "disk")
	if code != 0 {
		t.Fatalf("image-status: %s", errOut)
	}
	for _, want := range []string{"Type: raw", "Hostname: diskhost", "OS: Disk OS 7"} {
		if !strings.Contains(out, want) {
			t.Errorf("image-status lacks %q:\n%s", want, out)
		}
	}
	list := varlinkJSON(t, mustVarlink(t, "call", d.sock(), "io.systemd.MachineImage.List", `{"name":"disk","acquireMetadata":"yes"}`))
	if len(list) != 1 || list[0]["hostname"] != "diskhost" || !strings.Contains(fmtJSON(list[0]["OSRelease"]), "Disk OS 7") {
		t.Errorf("List disk with metadata: %v", list)
	}
}

// While systemd-nspawn 252 runs an image, removing, renaming or marking it
// read-only is refused with EBUSY on both transports (the daemon sees nspawn's
// locks); once nspawn is gone, they work.
func TestImagesInUseByNspawn(t *testing.T) {
	if _, err := exec.LookPath("systemd-nspawn"); err != nil {
		t.Fatal("systemd-nspawn not installed: run `make deps` (systemd-container)")
	}
	pool := newPoolDir(t)
	mustRun(t, "cp", "-a", makeRootfs(t), filepath.Join(pool, "ct"))
	d, bus := startBusDaemon(t, "--units", "none", "--image-pool", pool)

	cmd := exec.Command("systemd-nspawn", "-q", "--register=no", "--keep-unit", "-D", filepath.Join(pool, "ct"), "/bin/sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	t.Cleanup(stop)
	waitLong(t, "nspawn locks the image", func() bool { return exists(filepath.Join(pool, ".#ct.lck")) })

	for _, args := range [][]string{{"remove", "ct"}, {"rename", "ct", "ct2"}, {"read-only", "ct"}} {
		_, errOut, code := inSystemdNS(t, d, bus, -1, "machinectl", append([]string{"--no-pager"}, args...)...)
		if code == 0 || !strings.Contains(errOut, "Device or resource busy") {
			t.Errorf("machinectl %v while nspawn runs: %d %s", args, code, errOut)
		}
	}
	for method, params := range map[string]string{
		"Remove": `{"name":"ct"}`,
		"Update": `{"name":"ct","newName":"ct2"}`,
	} {
		if out, errOut, code := varlinkctl(t, "call", d.sock(), "io.systemd.MachineImage."+method, params); code == 0 || !strings.Contains(out+errOut, "EBUSY") {
			t.Errorf("%s while nspawn runs: %d %s %s", method, code, out, errOut)
		}
	}
	if !exists(filepath.Join(pool, "ct/bin/busybox")) || immutable(t, filepath.Join(pool, "ct")) {
		t.Fatal("the image was changed while in use")
	}

	stop()
	// The container's processes let go of the lock once they are gone.
	waitLong(t, "read-only once nspawn is gone", func() bool {
		_, _, code := varlinkctl(t, "call", d.sock(), "io.systemd.MachineImage.Update", `{"name":"ct","readOnly":true}`)
		return code == 0
	})
	if !immutable(t, filepath.Join(pool, "ct")) {
		t.Error("not read-only")
	}
	if _, errOut, code := inSystemdNS(t, d, bus, -1, "machinectl", "--no-pager", "read-only", "ct", "no"); code != 0 {
		t.Fatalf("read-only no: %s", errOut)
	}
	if _, errOut, code := inSystemdNS(t, d, bus, -1, "machinectl", "--no-pager", "rename", "ct", "ct2"); code != 0 {
		t.Fatalf("rename after nspawn: %s", errOut)
	}
	mustVarlink(t, "call", d.sock(), "io.systemd.MachineImage.Remove", `{"name":"ct2"}`)
	if exists(filepath.Join(pool, "ct2")) || exists(filepath.Join(pool, "ct")) {
		t.Error("remove after nspawn left the tree")
	}
}

// Image objects: enumerated under /org/freedesktop/machine1/image, introspected
// with the Image interface, their properties readable by anyone, their methods
// the Manager's rules on the image the path names.
func TestImagesObjects(t *testing.T) {
	pool := newPoolDir(t)
	writeOSTree(t, filepath.Join(pool, "alpha"), "Alpha OS 1", "alphahost")
	writeOSTree(t, filepath.Join(pool, "fedora-40"), "Fedora", "fed")
	_, bus := startBusDaemon(t, "--units", "none", "--image-pool", pool)
	bctl := func(cred *syscall.Credential, args ...string) string {
		t.Helper()
		out, errOut, code := busctl(t, bus, cred, args...)
		if code != 0 {
			t.Fatalf("busctl %v: %d %s", args, code, errOut)
		}
		return out
	}
	out := bctl(nil, "tree", "--list", m1Dest)
	for _, want := range []string{"/org/freedesktop/machine1/image/alpha", "/org/freedesktop/machine1/image/fedora_2d40", "/org/freedesktop/machine1/image/_2ehost"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("busctl tree lacks %s:\n%s", want, out)
		}
	}
	out = bctl(nil, "introspect", m1Dest, "/org/freedesktop/machine1/image/fedora_2d40", "org.freedesktop.machine1.Image")
	for _, want := range []string{".Clone", ".GetOSRelease", ".SetLimit", ".LimitExclusive"} {
		if !strings.Contains(out, want) {
			t.Errorf("introspection lacks %s:\n%s", want, out)
		}
	}
	out = bctl(nobodyCred, "get-property", m1Dest, "/org/freedesktop/machine1/image/fedora_2d40", "org.freedesktop.machine1.Image", "Name", "Path", "Type", "ReadOnly")
	if want := "s \"fedora-40\"\ns \"" + filepath.Join(pool, "fedora-40") + "\"\ns \"directory\"\nb false\n"; out != want {
		t.Errorf("nobody's properties: %q, want %q", out, want)
	}
	out = bctl(nil, "call", m1Dest, "/org/freedesktop/machine1/image/alpha", "org.freedesktop.machine1.Image", "GetHostname")
	if out != "s \"alphahost\"\n" {
		t.Errorf("GetHostname: %q", out)
	}
	// Each single-field getter answers its own file, on the Manager and on the
	// image object alike.
	idBytes := "ay 16 1 35 69 103 137 171 205 239 1 35 69 103 137 171 205 239\n"
	for _, g := range []struct{ method, want string }{
		{"Hostname", "s \"alphahost\"\n"},
		{"MachineID", idBytes},
		{"MachineInfo", "a{ss} 1 \"PRETTY_HOSTNAME\" \"Pretty alphahost\"\n"},
		{"OSRelease", "a{ss} 2 \"ID\" \"testos\" \"PRETTY_NAME\" \"Alpha OS 1\"\n"},
	} {
		if out := bctl(nil, "call", m1Dest, m1Path, m1Manager, "GetImage"+g.method, "s", "alpha"); out != g.want {
			t.Errorf("GetImage%s: %q, want %q", g.method, out, g.want)
		}
		if out := bctl(nil, "call", m1Dest, "/org/freedesktop/machine1/image/alpha", "org.freedesktop.machine1.Image", "Get"+g.method); out != g.want {
			t.Errorf("Image.Get%s: %q, want %q", g.method, out, g.want)
		}
	}
	if _, errOut, code := busctl(t, bus, nobodyCred, "call", m1Dest, "/org/freedesktop/machine1/image/alpha", "org.freedesktop.machine1.Image", "Remove"); code == 0 || !strings.Contains(errOut, "ccess denied") {
		t.Errorf("nobody's Image.Remove: %d %s", code, errOut)
	}
	bctl(nil, "call", m1Dest, "/org/freedesktop/machine1/image/alpha", "org.freedesktop.machine1.Image", "Clone", "sb", "beta", "true")
	bctl(nil, "call", m1Dest, "/org/freedesktop/machine1/image/beta", "org.freedesktop.machine1.Image", "MarkReadOnly", "b", "false")
	bctl(nil, "call", m1Dest, "/org/freedesktop/machine1/image/beta", "org.freedesktop.machine1.Image", "Rename", "s", "gamma")
	if !exists(filepath.Join(pool, "gamma/srv/data")) || immutable(t, filepath.Join(pool, "gamma")) {
		t.Error("Clone, MarkReadOnly, Rename on image objects")
	}
	bctl(nil, "call", m1Dest, "/org/freedesktop/machine1/image/gamma", "org.freedesktop.machine1.Image", "Remove")
	if exists(filepath.Join(pool, "gamma")) {
		t.Error("Image.Remove left the tree")
	}
	if _, errOut, code := busctl(t, bus, nil, "call", m1Dest, "/org/freedesktop/machine1/image/gamma", "org.freedesktop.machine1.Image", "Remove"); code == 0 || !strings.Contains(errOut, "Unknown object") {
		t.Errorf("a removed image's object: %d %s", code, errOut)
	}
}

// For nobody: removing images is granted, renaming refused, the SetLimit
// details name the image "machine" (upstream's key), and inspecting images is
// granted for "alpha" only.
const polkitImageRules = `polkit.addRule(function(action, subject) {
  if (subject.user != "nobody") { return polkit.Result.NOT_HANDLED; }
  if (action.id == "org.freedesktop.machine1.manage-images") {
    if (action.lookup("verb") == "remove" && action.lookup("image") == "gone") { return polkit.Result.YES; }
    if (action.lookup("verb") == "set_limit" && action.lookup("machine") == "alpha") { return polkit.Result.YES; }
    if (action.lookup("verb") == "rename") { return polkit.Result.NO; }
  }
  if (action.id == "org.freedesktop.machine1.inspect-images" && action.lookup("image") == "alpha") { return polkit.Result.YES; }
  return polkit.Result.NOT_HANDLED;
});
`

// With polkitd, manage-images and inspect-images decide for unprivileged
// callers of both transports, with upstream's details.
func TestImagesPolkit(t *testing.T) {
	needRoot(t)
	pool := newPoolDir(t)
	writeOSTree(t, filepath.Join(pool, "alpha"), "Alpha OS 1", "alphahost")
	writeOSTree(t, filepath.Join(pool, "beta"), "Beta OS", "betahost")
	writeOSTree(t, filepath.Join(pool, "gone"), "Gone OS", "gonehost")
	bus := startPrivateBus(t)
	startPolkitd(t, bus, polkitImageRules)
	d := startDaemon(t, "--bus", bus.addr, "--units", "none", "--image-pool", pool)
	waitBusName(t, bus)

	if _, errOut, code := busctl(t, bus, nobodyCred, "call", m1Dest, m1Path, m1Manager, "RemoveImage", "s", "gone"); code != 0 {
		t.Errorf("polkit-granted RemoveImage: %s", errOut)
	}
	if exists(filepath.Join(pool, "gone")) {
		t.Error("gone not removed")
	}
	if _, errOut, code := busctl(t, bus, nobodyCred, "call", m1Dest, m1Path, m1Manager, "RenameImage", "ss", "alpha", "x"); code == 0 || !strings.Contains(errOut, "ccess denied") {
		t.Errorf("polkit-refused RenameImage: %d %s", code, errOut)
	}
	// The limit is granted (by the "machine" detail), then refused by ext4.
	if _, errOut, code := busctl(t, bus, nobodyCred, "call", m1Dest, m1Path, m1Manager, "SetImageLimit", "st", "alpha", "1000000"); code == 0 || !strings.Contains(errOut, "Operation not supported") {
		t.Errorf("polkit-granted SetImageLimit: %d %s", code, errOut)
	}
	if out, errOut, code := busctl(t, bus, nobodyCred, "call", m1Dest, m1Path, m1Manager, "GetImageHostname", "s", "alpha"); code != 0 || out != "s \"alphahost\"\n" {
		t.Errorf("polkit-granted GetImageHostname: %d %s %s", code, errOut, out)
	}
	if _, errOut, code := busctl(t, bus, nobodyCred, "call", m1Dest, m1Path, m1Manager, "GetImageHostname", "s", "beta"); code == 0 {
		t.Errorf("GetImageHostname of beta without a grant: %s", errOut)
	}
	out, errOut, code := varlinkctlAs(t, nobodyCred, "call", d.sock(), "io.systemd.MachineImage.List", `{"name":"alpha","acquireMetadata":"yes"}`)
	if code != 0 || !strings.Contains(out, "alphahost") {
		t.Errorf("polkit-granted Varlink metadata: %d %s %s", code, errOut, out)
	}
	if _, errOut, code := varlinkctlAs(t, nobodyCred, "call", d.sock(), "io.systemd.MachineImage.Update", `{"name":"alpha","newName":"x"}`); code == 0 || !strings.Contains(errOut, "PermissionDenied") && !strings.Contains(errOut, "InteractiveAuthenticationRequired") {
		t.Errorf("Varlink Update without a grant: %d %s", code, errOut)
	}
	if !exists(filepath.Join(pool, "alpha/srv/data")) || !exists(filepath.Join(pool, "beta/srv/data")) {
		t.Error("alpha or beta changed")
	}
}

// The 65th operation at once is refused on both transports. The pool is an
// ext4 file system the test freezes (fsfreeze), so that 64 clones into it hang
// in their first write, each holding its place, until it is thawed; then all
// 64 complete.
func TestImagesTooManyOperations(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	fsimg := filepath.Join(dir, "fs.img")
	mustRun(t, "truncate", "-s", "64M", fsimg)
	mustRun(t, "mkfs.ext4", "-q", "-F", fsimg)
	pool := filepath.Join(dir, "pool")
	if err := os.Mkdir(pool, 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "mount", "-o", "loop", fsimg, pool)
	t.Cleanup(func() { exec.Command("umount", "-l", pool).Run() })
	writeOSTree(t, filepath.Join(pool, "src"), "Src", "src")
	d, bus := startBusDaemon(t, "--units", "none", "--image-pool", pool)
	c := dbusConn(t, bus)

	mustRun(t, "fsfreeze", "-f", pool)
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			exec.Command("fsfreeze", "-u", pool).Run()
		}
	}
	t.Cleanup(thaw) // runs before the daemon stops and the pool is unmounted

	prefix := fmt.Sprintf("op%d-", os.Getpid())
	var clients []*exec.Cmd
	for i := range 64 {
		cmd := exec.Command(varlinkctlPath(t), "call", d.sock(), "io.systemd.MachineImage.Clone",
			fmt.Sprintf(`{"name":"src","newName":"%s%d"}`, prefix, i))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, cmd)
	}
	t.Cleanup(func() {
		for _, cmd := range clients {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	// Each clone takes the lock of its new name before it writes anything.
	// 64 clients take a while to start on a busy machine: a bound of its own.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		running := 0
		for i := range 64 {
			if exists(fmt.Sprintf("/run/systemd/nspawn/locks/name-%s%d", prefix, i)) {
				running++
			}
		}
		if running == 64 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for 64 clones to run: %d do", running)
		}
	}
	if _, errOut, code := varlinkctl(t, "call", d.sock(), "io.systemd.MachineImage.Clone", `{"name":"src","newName":"one-more"}`); code == 0 || !strings.Contains(errOut, "io.systemd.MachineImage.TooManyOperations") {
		t.Errorf("the 65th clone on Varlink: %d %s", code, errOut)
	}
	if err := managerCall(t, c, "CloneImage", "src", "one-more", false).Err; dbusErrorName(err) != "org.freedesktop.DBus.Error.LimitsExceeded" {
		t.Errorf("the 65th clone on D-Bus: %v", err)
	}
	if err := managerCall(t, c, "RemoveImage", "src").Err; dbusErrorName(err) != "org.freedesktop.DBus.Error.LimitsExceeded" {
		t.Errorf("a removal past the cap: %v", err)
	}

	thaw()
	for i, cmd := range clients {
		if err := cmd.Wait(); err != nil {
			t.Errorf("clone %d: %v", i, err)
		}
	}
	clients = nil
	for i := range 64 {
		if !exists(filepath.Join(pool, fmt.Sprintf("%s%d/srv/data", prefix, i))) {
			t.Errorf("clone %d missing", i)
		}
	}
	if exists(filepath.Join(pool, "one-more")) {
		t.Error("the refused clone was made")
	}
}

// waitLong is eventually for what takes long on a busy machine (a container
// starting or going): it gives up after a minute, and checks no duration.
func waitLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
	}
}
