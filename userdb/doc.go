// Package userdb serves io.systemd.UserDatabase on machined's userdb socket, so
// that nss-systemd, userdbctl and every NSS consumer resolve the users and groups
// synthesized for user-namespaced containers.
//
// It answers purely from the core's id index: never from /proc, never waiting on
// the registry lock or on D-Bus. It imports the Varlink transport and the core;
// it must not import the io.systemd.Machine front end (varlink/machine),
// dbusshim, godbus or a back end; TestUserdbImports enforces that.
package userdb
