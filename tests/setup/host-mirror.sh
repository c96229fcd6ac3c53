# Sourced by the setup scripts: host_mirror prints the Debian mirror the host's apt
# uses for its own release (deb822 sources first, then one-line ones), or
# deb.debian.org when it names none; $1, when not empty, wins.
host_mirror() {
    if [ -n "${1:-}" ]; then echo "$1"; return; fi
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
