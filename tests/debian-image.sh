#!/bin/bash
# debian-image.sh - CTest fixture for the deployment tests (tests/netns/ansible.test.sh,
# tests/netns/container_image.test.sh): the Debian package of the dotgw under test and a
# minimal Debian 12 root that can run it, both made once per build tree:
#
#   BUILD/ --cpack -G DEB--> OUT/dotgw.deb
#   mmdebstrap bookworm  --> OUT/root.tar   systemd (PID 1 under systemd-nspawn -b), dbus,
#                                           python3 and python3-apt (Ansible's modules),
#                                           iproute2, procps, nftables, dig, and the
#                                           package's run-time libraries, so that installing
#                                           dotgw.deb there needs no network
#
# Nothing is installed on this machine and nothing runs: mmdebstrap only downloads packages
# from the machine's Debian mirror (apt's own configuration) and writes a tarball. The root is
# kept when OUT/root.list (what it was made with) still matches, so that a second run of the
# suite in the same build tree skips the ~40-90 s build.
#
# Usage: debian-image.sh PATH-TO-DOTGW OUT-DIR    (as root)
# Exit status: 0 made (or kept), 1 failed, 77 a tool or privilege is missing.
set -u

DOTGW=${1:-}
OUT=${2:-}
if [ -z "$DOTGW" ] || [ -z "$OUT" ]; then
	echo "usage: $0 PATH-TO-DOTGW OUT-DIR" >&2
	exit 2
fi
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (mmdebstrap)"; exit 77; }
for t in cpack dpkg-deb mmdebstrap; do
	command -v "$t" >/dev/null || { echo "SKIP: needs '$t', which is not installed"; exit 77; }
done
BUILD=$(dirname -- "$(readlink -f -- "$DOTGW")")
[ -r "$BUILD/CPackConfig.cmake" ] || { echo "FAIL  no CPackConfig.cmake in $BUILD"; exit 1; }

mkdir -p "$OUT/pkg" && OUT=$(cd -- "$OUT" && pwd) || exit 1
rm -f "$OUT"/pkg/dotgw_*.deb
echo "# building the package from $BUILD"
if ! (cd "$OUT/pkg" && timeout 180 cpack -G DEB --config "$BUILD/CPackConfig.cmake" \
	-B "$OUT/pkg") >"$OUT/cpack.log" 2>&1; then
	tail -n 30 "$OUT/cpack.log"
	echo "FAIL  cpack -G DEB"
	exit 1
fi
DEB=$(find "$OUT/pkg" -maxdepth 1 -name 'dotgw_*.deb' | head -n 1)
[ -n "$DEB" ] || { echo "FAIL  cpack made no dotgw_*.deb"; exit 1; }
cp -- "$DEB" "$OUT/dotgw.deb" || exit 1
echo "ok    $(basename -- "$DEB") -> $OUT/dotgw.deb"

# The package's dependencies, as its Depends field names them (versions dropped).
DEPS=$(dpkg-deb -f "$DEB" Depends | tr ',' '\n' | sed -E 's/\(.*\)//; s/[[:space:]]//g' |
	grep -v '^$' | sort -u)
# shellcheck disable=SC2086 # one package a word
LIST=$(printf '%s\n' systemd systemd-sysv dbus python3 python3-apt iproute2 procps nftables \
	dnsutils ca-certificates $DEPS | sort -u | paste -sd, -)

if [ -s "$OUT/root.tar" ] && [ "$(cat "$OUT/root.list" 2>/dev/null)" = "$LIST" ]; then
	echo "ok    Debian 12 root kept: $OUT/root.tar ($(du -m "$OUT/root.tar" | cut -f1) MiB)"
	exit 0
fi
rm -f "$OUT/root.tar" "$OUT/root.list"
echo "# building a Debian 12 root with $LIST"
start=$(date +%s)
if ! timeout 600 mmdebstrap --variant=apt --format=tar --include="$LIST" bookworm "$OUT/root.tar.part" \
	>"$OUT/mmdebstrap.log" 2>&1; then
	tail -n 30 "$OUT/mmdebstrap.log"
	rm -f "$OUT/root.tar.part"
	echo "FAIL  mmdebstrap"
	exit 1
fi
mv -- "$OUT/root.tar.part" "$OUT/root.tar" && printf '%s\n' "$LIST" >"$OUT/root.list" || exit 1
echo "ok    Debian 12 root: $OUT/root.tar ($(du -m "$OUT/root.tar" | cut -f1) MiB," \
	"$(($(date +%s) - start)) s)"
