#!/bin/bash
# Builds, once, the Debian 12 tree the booted-container tests run with systemd as
# PID 1 (systemd-nspawn -b), and prints its path:
#   ${MACHINED_TEST_TREE:-/var/cache/machined-tests/bookworm}
# The tree has systemd, dbus, a user bus in each user manager (dbus-user-session,
# for the per-user instance), logind (libpam-systemd), systemd-container (so that a
# test can put our daemon in place of its systemd-machined), polkitd, util-linux,
# iproute2 and procps; root and the user `tester` (uid 1000) log in without a
# password; /etc/machine-id is empty, so that each boot gets a machine ID of its own.
# Tests never write into it: they boot an overlay of it (tests/boot_harness_test.go).
#
# The tree is built in a temporary directory beside it and renamed into place when
# complete, so a half-built tree is never used; concurrent callers wait on a lock.
# A stamp records what the tree was built with: when this script asks for
# something else, the tree is rebuilt. Re-running it only checks the stamp.
# DEBIAN_MIRROR overrides the mirror (default: the one the host's apt uses).
set -euo pipefail

TREE="${MACHINED_TEST_TREE:-/var/cache/machined-tests/bookworm}"
TREE="${TREE%/}"
PKGS="systemd,systemd-sysv,dbus,dbus-user-session,login,libpam-systemd,systemd-container,polkitd,util-linux,iproute2,procps"
STAMP_FILE=etc/machined-test-tree
# Changing anything that goes into the tree below means changing this line.
STAMP="bookworm minbase 1 $PKGS"

if [ "$(id -u)" != 0 ]; then
    echo "debian-tree.sh: must run as root (debootstrap, chroot)" >&2
    exit 1
fi

current() { [ -f "$TREE/$STAMP_FILE" ] && [ "$(cat "$TREE/$STAMP_FILE")" = "$STAMP" ]; }
if current; then echo "$TREE"; exit 0; fi

parent=$(dirname -- "$TREE")
mkdir -p "$parent"
exec 9>"$TREE.lock"
flock 9
# Whoever held the lock before may have built it.
if current; then echo "$TREE"; exit 0; fi

# Leftovers of a build that was killed: nobody else builds while we hold the lock.
rm -rf "$TREE".new.* "$TREE".old.*

# shellcheck source=tests/setup/host-mirror.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/host-mirror.sh"
new=$(mktemp -d "$TREE.new.XXXXXX")
trap 'rm -rf "$new"' EXIT
chmod 755 "$new"
echo "debootstrap bookworm into $new" >&2
debootstrap --variant=minbase --include="$PKGS" bookworm "$new" "$(host_mirror "${DEBIAN_MIRROR:-}")" >&2

chroot "$new" passwd -d root >/dev/null
chroot "$new" useradd --create-home --uid 1000 --user-group --shell /bin/bash tester
chroot "$new" passwd -d tester >/dev/null
echo machined-test > "$new/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tmachined-test\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$new/etc/hosts"
# Empty, not missing and not "uninitialized": systemd then makes a transient ID at
# boot without treating it as a first boot (systemd-firstboot would prompt).
: > "$new/etc/machine-id"
rm -f "$new/var/lib/dbus/machine-id"
chroot "$new" apt-get clean
rm -rf "$new"/var/lib/apt/lists/*
printf '%s\n' "$STAMP" > "$new/$STAMP_FILE"

if [ -e "$TREE" ]; then
    old=$(mktemp -d "$TREE.old.XXXXXX")
    mv -T "$TREE" "$old/tree"
    mv -T "$new" "$TREE"
    rm -rf "$old"
else
    mv -T "$new" "$TREE"
fi
trap - EXIT
echo "$TREE"
