module github.com/machined-go/machined

go 1.26.8

require (
	github.com/godbus/dbus/v5 v5.2.4
	github.com/varlink/go v0.4.1-0.20261015173642-c935be0c53f7
	golang.org/x/sys v0.50.0
)
