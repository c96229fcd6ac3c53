package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// make install puts every packaged file under DESTDIR, with the binary's
// path filled in, for PREFIX=/usr and for the default /usr/local.
func TestMakeInstall(t *testing.T) {
	for prefix, policyDir := range map[string]string{"/usr": "/usr/share/dbus-1/system.d", "/usr/local": "/etc/dbus-1/system.d"} {
		dest := t.TempDir()
		cmd := exec.Command("make", "-C", "..", "install", "DESTDIR="+dest, "PREFIX="+prefix, "BIN="+filepath.Join(dest, "build", "machined"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make install PREFIX=%s: %v\n%s", prefix, err, out)
		}
		bin := prefix + "/lib/machined/machined"
		for path, want := range map[string]string{
			bin: "",
			prefix + "/lib/systemd/system/systemd-machined.service":                   "ExecStart=" + bin + " --bus system\n",
			prefix + "/lib/systemd/system/systemd-machined.socket":                    "FileDescriptorName=varlink\nSocketMode=0666\nSymlinks=/run/systemd/machine/io.systemd.MachineImage /run/varlink/registry/io.systemd.Machine /run/varlink/registry/io.systemd.MachineImage\n",
			prefix + "/share/dbus-1/system-services/org.freedesktop.machine1.service": "Exec=" + bin + " --bus system\n",
			policyDir + "/org.freedesktop.machine1.conf":                              `<allow own="org.freedesktop.machine1"/>`,
			prefix + "/share/polkit-1/actions/org.freedesktop.machine1.policy":        `<action id="org.freedesktop.machine1.register-machine">`,
			prefix + "/lib/systemd/user/systemd-machined.service":                     "ExecStart=" + bin + " --user\n",
			prefix + "/lib/systemd/user/systemd-machined.socket":                      "ListenStream=%t/systemd/machine/io.systemd.Machine\nFileDescriptorName=varlink\nSocketMode=0600\nSymlinks=%t/systemd/machine/io.systemd.MachineImage %t/varlink/registry/io.systemd.Machine %t/varlink/registry/io.systemd.MachineImage\n",
			prefix + "/share/dbus-1/services/org.freedesktop.machine1.service":        "Exec=" + bin + " --user\nSystemdService=systemd-machined.service\n",
		} {
			b, err := os.ReadFile(filepath.Join(dest, path))
			if err != nil {
				t.Errorf("PREFIX=%s: %v", prefix, err)
				continue
			}
			if !strings.Contains(string(b), want) {
				t.Errorf("%s lacks %q", path, want)
			}
			if strings.Contains(string(b), "@LIBEXECDIR@") {
				t.Errorf("%s: placeholder left", path)
			}
		}
		if target, err := os.Readlink(filepath.Join(dest, prefix, "lib/systemd/system/dbus-org.freedesktop.machine1.service")); err != nil || target != "systemd-machined.service" {
			t.Errorf("alias: %q %v", target, err)
		}
		if out, err := exec.Command(filepath.Join(dest, bin), "--version").Output(); err != nil || !strings.HasPrefix(string(out), "machined ") {
			t.Errorf("installed binary: %q %v", out, err)
		}
	}
}
