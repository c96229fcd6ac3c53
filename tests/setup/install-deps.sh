#!/bin/bash
# Installs everything the test suite needs, idempotently, on Debian 12 as root:
#   * Debian packages: the real clients (busctl, machinectl, systemd-nspawn, userdbctl,
#     getent through nss-systemd and nss-mymachines), dbus-daemon, polkitd (run on
#     private buses only), busybox for test root file systems, debootstrap, and what a
#     bare Debian 12 lacks besides: CA certificates (Go module downloads), python3 (a
#     transport test's foreign-uid client), procps (pgrep, ps);
#   * varlinkctl from systemd 257 (Debian 13), which Debian 12 does not ship: a minimal
#     trixie tree is debootstrapped into $TRIXIE_ROOT and /usr/local/bin/varlinkctl runs
#     its binary through trixie's own dynamic loader, on the host's file system;
#   * for `make bench-compare`: systemd-machined 257 in that tree (systemd-container) and
#     gcc on the host (the NSS lookup helper is compiled at bench time).
# Re-running it only checks what is there.
set -euo pipefail

TRIXIE_ROOT="${TRIXIE_ROOT:-/var/tmp/trixie-root}"
TRIXIE_ROOT="${TRIXIE_ROOT%/}"
VARLINKCTL_WRAPPER="${VARLINKCTL_WRAPPER:-/usr/local/bin/varlinkctl}"
DEB_PKGS="ca-certificates python3 systemd-container systemd-userdbd libnss-systemd libnss-mymachines dbus polkitd busybox-static debootstrap iproute2 util-linux procps gcc libc6-dev btrfs-progs e2fsprogs fdisk"

if [ "$(id -u)" != 0 ]; then
    echo "install-deps.sh: must run as root (it installs Debian packages)" >&2
    exit 1
fi

# Waits while another apt-get or dpkg runs. Reads /proc itself: procps (pgrep) may
# be one of the packages still to install.
apt_busy() {
    local c n
    for c in /proc/[0-9]*/comm; do
        read -r n < "$c" 2>/dev/null || continue
        case "$n" in apt-get|dpkg) return 0 ;; esac
    done
    return 1
}
wait_for_apt() {
    while apt_busy; do sleep 1; done
}

missing=""
for p in $DEB_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing Debian packages:$missing"
    wait_for_apt
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
fi

# The Debian mirror the host's apt uses for its own release (deb822 first, then one-line).
host_mirror() {
    if [ -n "${TRIXIE_MIRROR:-}" ]; then echo "$TRIXIE_MIRROR"; return; fi
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk 'tolower($1)=="uris:" { for (i=2;i<=NF;i++) if ($i !~ /security/ && $i ~ /^(https?|file|ftp):/) { print $i; exit } }' "$f")
        [ -n "$uri" ] && { echo "${uri%/}"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        uri=$(sed -e 's/#.*//' -e 's/\[[^]]*\]//g' "$f" | awk '$1=="deb" && $2 !~ /security/ && $2 ~ /^(https?|file|ftp):/ { print $2; exit }')
        [ -n "$uri" ] && { echo "${uri%/}"; return; }
    done
    echo "http://deb.debian.org/debian"
}

if [ ! -x "$TRIXIE_ROOT/usr/bin/varlinkctl" ] || [ ! -x "$TRIXIE_ROOT/usr/lib/systemd/systemd-machined" ]; then
    if [ ! -x "$TRIXIE_ROOT/usr/bin/apt-get" ] || [ ! -f "$TRIXIE_ROOT/etc/debian_version" ]; then
        echo "debootstrap trixie into $TRIXIE_ROOT"
        debootstrap --variant=minbase trixie "$TRIXIE_ROOT" "$(host_mirror)"
    fi
    printf '#!/bin/sh\nexit 101\n' > "$TRIXIE_ROOT/usr/sbin/policy-rc.d"
    chmod 755 "$TRIXIE_ROOT/usr/sbin/policy-rc.d"
    mounted=""
    if ! mountpoint -q "$TRIXIE_ROOT/proc"; then
        mount -t proc proc "$TRIXIE_ROOT/proc"; mounted=1
    fi
    trap '[ -n "$mounted" ] && umount "$TRIXIE_ROOT/proc"' EXIT
    chroot "$TRIXIE_ROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    chroot "$TRIXIE_ROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends systemd systemd-container
    chroot "$TRIXIE_ROOT" apt-get clean
fi

ldso=""
for c in "$TRIXIE_ROOT"/usr/lib/*-linux-gnu*/ld-linux*.so.[0-9]; do
    [ -e "$c" ] && { ldso=$c; break; }
done
[ -n "$ldso" ] || { echo "no dynamic loader in $TRIXIE_ROOT" >&2; exit 1; }
libdir=$(dirname -- "$ldso")
want=$(cat <<W
#!/bin/sh
# varlinkctl from systemd 257 (Debian 13), run on this host through trixie's loader.
# Installed by tests/setup/install-deps.sh.
exec env SYSTEMD_PAGER=cat "$ldso" --library-path "$libdir/systemd:$libdir" "$TRIXIE_ROOT/usr/bin/varlinkctl" "\$@"
W
)
if [ ! -x "$VARLINKCTL_WRAPPER" ] || [ "$(cat "$VARLINKCTL_WRAPPER")" != "$want" ]; then
    mkdir -p "$(dirname "$VARLINKCTL_WRAPPER")"
    printf '%s\n' "$want" > "$VARLINKCTL_WRAPPER"
    chmod 755 "$VARLINKCTL_WRAPPER"
fi
echo "varlinkctl: $("$VARLINKCTL_WRAPPER" --version | head -1)"
