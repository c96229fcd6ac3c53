package containerbus

import (
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/service"
)

// property is one (sv) of StartTransientUnit.
type property struct {
	Name  string
	Value dbus.Variant
}

// auxUnit is one (sa(sv)) of StartTransientUnit; a shell has none.
type auxUnit struct {
	Name  string
	Props []property
}

// execCommand is one (sasb) of ExecStart: path, argv, ignore failure.
type execCommand struct {
	Path          string
	Args          []string
	IgnoreFailure bool
}

// shellProperties describes a shell service the way upstream's does: the
// terminal as stdio and controlling terminal (reset, hung up on stop), a utmp
// entry, a PAM login session, the user's home as working directory if it
// exists, and the program, whose failure fails nothing.
func shellProperties(u service.ShellUnit) []property {
	tty := dbus.UnixFD(u.TTY.Fd())
	props := []property{
		{"Description", dbus.MakeVariant("Shell for User " + u.User)},
		{"StandardInputFileDescriptor", dbus.MakeVariant(tty)},
		{"StandardOutputFileDescriptor", dbus.MakeVariant(tty)},
		{"StandardErrorFileDescriptor", dbus.MakeVariant(tty)},
		{"SendSIGHUP", dbus.MakeVariant(true)},
		{"IgnoreSIGPIPE", dbus.MakeVariant(false)},
		{"KillMode", dbus.MakeVariant("mixed")},
		{"TTYPath", dbus.MakeVariant(u.TTYPath)},
		{"TTYReset", dbus.MakeVariant(true)},
		{"UtmpIdentifier", dbus.MakeVariant(strings.TrimPrefix(u.TTYPath, "/dev/"))},
		{"UtmpMode", dbus.MakeVariant("user")},
		{"PAMName", dbus.MakeVariant("login")},
		{"WorkingDirectory", dbus.MakeVariant("-~")},
		{"User", dbus.MakeVariant(u.User)},
	}
	if len(u.Env) > 0 {
		props = append(props, property{"Environment", dbus.MakeVariant(u.Env)})
	}
	return append(props, property{"ExecStart", dbus.MakeVariant([]execCommand{{u.Path, u.Args, true}})})
}
