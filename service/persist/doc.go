// Package persist reads and writes machined's state directory,
// /run/systemd/machines/: one env-file per machine plus "unit:<unit>" symlinks.
// The format is a de-facto ABI read by sd-login, nss-mymachines, "-M" users and
// upstream machined, so keys, order and quoting follow upstream.
//
// It must not import varlink, godbus or any other project package but
// internal/quicksys, through which the hot path's file system calls go,
// internal/bufpool and service/envfile, the env-file reader it shares with
// os-release.
package persist
