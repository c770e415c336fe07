#!/bin/bash
# package.test.sh - the Debian package: build it with CPack from the build tree of the dotgw
# under test, unpack it into a fresh directory with dpkg-deb (nothing is installed on this
# machine and no network is touched) and check what it holds:
#
#   BUILD/ --cpack -G DEB--> TMP/pkg/dotgw_V_ARCH.deb --dpkg-deb -x--> TMP/root/
#                                    |                                  |-- usr/sbin/dotgw
#                      dpkg-deb -I: control, conffiles,                 |-- lib/systemd/system/
#                      postinst, prerm, postrm                          |-- etc/dotgw/dotgw.conf
#                                                                       `-- usr/share/man/...
#
# Then: the unit passes systemd-analyze verify and stays under an exposure of 3.0, the
# unpacked binary runs --version and checks the unpacked configuration, the man pages format
# without a warning, and every option of 'dotgw --help' appears in dotgw(8), dotgw.conf(5)
# and the shipped dotgw.conf.
#
# Usage: package.test.sh PATH-TO-DOTGW (the build directory is the binary's directory)

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_tools cpack dpkg-deb dpkg-shlibdeps gzip
lab_require_dotgw "${1:-}"

BUILD=$(dirname -- "$DOTGW")
[ -r "$BUILD/CPackConfig.cmake" ] || lab_skip "no CPackConfig.cmake in $BUILD"
lab_tmpdir
PKG="$LAB_DIR/pkg"
ROOT="$LAB_DIR/root"
mkdir -p "$PKG" "$ROOT"

lab_log "building the package from $BUILD"
if ! (cd "$PKG" && timeout 120 cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$PKG") \
	>"$LAB_DIR/cpack.out" 2>&1; then
	lab_bail "cpack -G DEB" "$(tail -n 30 "$LAB_DIR/cpack.out" | lab_indent)"
fi
DEB=$(find "$PKG" -maxdepth 1 -name 'dotgw_*.deb' | head -n 1)
[ -n "$DEB" ] || lab_bail "cpack made no dotgw_*.deb" "$(tail -n 30 "$LAB_DIR/cpack.out")"
lab_pass "cpack made $(basename -- "$DEB")"

# --- control archive ----------------------------------------------------------------------
INFO=$(dpkg-deb -I "$DEB")
lab_check_match "control: Package dotgw" '^ Package: dotgw$' "$INFO"
lab_check_match "control: Section net" '^ Section: net$' "$INFO"
lab_check_match "control: Depends has the shared libraries and adduser" \
	'^ Depends: .*adduser.*libc6 .*libnftnl' "$INFO"
lab_check_match "control: Maintainer" '^ Maintainer: .+<.+@.+>$' "$INFO"
for script in postinst prerm postrm; do
	lab_check_match "control: $script is executable" \
		"^ +[0-9]+ bytes, +[0-9]+ lines +\\* +$script +#!/bin/sh$" "$INFO"
	dpkg-deb --ctrl-tarfile "$DEB" | tar -xO "./$script" >"$LAB_DIR/$script"
	lab_ok "$script: sh -n" sh -n "$LAB_DIR/$script"
done
lab_check_match "control: conffiles" '^ +[0-9]+ bytes, +1 lines +conffiles' "$INFO"
CONFFILES=$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles)
lab_check_eq "conffiles: /etc/dotgw/dotgw.conf" "/etc/dotgw/dotgw.conf" "$CONFFILES"

# --- data archive -------------------------------------------------------------------------
LIST=$(dpkg-deb -c "$DEB")
dpkg-deb -x "$DEB" "$ROOT" || lab_bail "dpkg-deb -x"
for f in usr/sbin/dotgw lib/systemd/system/dotgw.service etc/dotgw/dotgw.conf \
	usr/share/man/man8/dotgw.8.gz usr/share/man/man5/dotgw.conf.5.gz \
	usr/share/doc/dotgw/copyright usr/share/doc/dotgw/changelog.gz; do
	lab_ok "ships /$f" test -f "$ROOT/$f"
done
lab_check_match "binary: root:root 0755" '^-rwxr-xr-x root/root .* \./usr/sbin/dotgw$' "$LIST"
lab_check_match "configuration: root:root 0644" \
	'^-rw-r--r-- root/root .* \./etc/dotgw/dotgw\.conf$' "$LIST"
lab_check_nomatch "nothing under /usr/local" '\./usr/local/' "$LIST"

# --- the unpacked binary and configuration ------------------------------------------------
OUT=$("$ROOT/usr/sbin/dotgw" --version 2>&1)
lab_check_match "unpacked dotgw --version" '^dotgw [0-9]+\.[0-9]+' "$OUT"
OUT=$("$ROOT/usr/sbin/dotgw" --config "$ROOT/etc/dotgw/dotgw.conf" --check-config 2>&1)
lab_check_match "unpacked dotgw --check-config on the unpacked dotgw.conf" \
	'^dotgw: configuration OK' "$OUT"

# --- the unit -----------------------------------------------------------------------------
UNIT="$ROOT/lib/systemd/system/dotgw.service"
lab_check_match "unit: runs /usr/sbin/dotgw --config /etc/dotgw/dotgw.conf" \
	'^ExecStart=/usr/sbin/dotgw --config /etc/dotgw/dotgw\.conf$' "$(cat "$UNIT")"
lab_check_nomatch "unit: no User= (dotgw drops privileges itself)" '^User=' "$(cat "$UNIT")"
if command -v systemd-analyze >/dev/null 2>&1; then
	# The binary is not in /usr/sbin on this machine: verify a copy that points into ROOT.
	mkdir -p "$LAB_DIR/unit"
	sed "s#/usr/sbin/dotgw#$ROOT/usr/sbin/dotgw#g" "$UNIT" >"$LAB_DIR/unit/dotgw.service"
	OUT=$(cd "$LAB_DIR/unit" && MANPATH="$ROOT/usr/share/man" \
		systemd-analyze verify "$LAB_DIR/unit/dotgw.service" 2>&1)
	RC=$?
	if [ "$RC" = 0 ] && [ -z "$OUT" ]; then
		lab_pass "unit: systemd-analyze verify"
	else
		lab_fail "unit: systemd-analyze verify (exit $RC)" "$OUT"
	fi
	OUT=$(cd "$LAB_DIR/unit" && systemd-analyze security --offline=yes --threshold=30 \
		"$LAB_DIR/unit/dotgw.service" 2>&1)
	RC=$?
	if [ "$RC" = 0 ]; then
		lab_pass "unit: $(printf '%s\n' "$OUT" | grep -o 'exposure level.*' | head -n 1)"
	else
		lab_fail "unit: systemd-analyze security: exposure above 3.0" \
			"$(printf '%s\n' "$OUT" | grep -E '^✗|Overall')"
	fi
else
	lab_log "systemd-analyze is not installed: unit checks skipped"
fi

# --- man pages ----------------------------------------------------------------------------
if command -v groff >/dev/null 2>&1; then
	for page in man8/dotgw.8 man5/dotgw.conf.5; do
		OUT=$(gzip -dc "$ROOT/usr/share/man/$page.gz" | LC_ALL=C.UTF-8 groff -man -Tutf8 \
			-ww -z 2>&1)
		if [ -z "$OUT" ]; then
			lab_pass "$page: groff -man -ww: no warning"
		else
			lab_fail "$page: groff -man -ww" "$OUT"
		fi
	done
else
	lab_log "groff is not installed: man page checks skipped"
fi

# Every long option of --help is in the man pages and in the shipped configuration file.
MAN8=$(gzip -dc "$ROOT/usr/share/man/man8/dotgw.8.gz")
MAN5=$(gzip -dc "$ROOT/usr/share/man/man5/dotgw.conf.5.gz")
CONF=$(cat "$ROOT/etc/dotgw/dotgw.conf")
missing8=() missing5=() missingc=()
for opt in $("$ROOT/usr/sbin/dotgw" --help | grep -oE -- '--[a-z][a-z0-9-]+' | sort -u); do
	key=${opt#--}
	man=${key//-/\\\\-}
	printf '%s\n' "$MAN8" | grep -q -- "\\\\-\\\\-$man" || missing8+=("$opt")
	case $key in # not settings: no key in the file
	config | check-config | remove-rules | show-egress | health | help | version) continue ;;
	esac
	printf '%s\n' "$MAN5" | grep -q -- "^\\.B[IR]* $man\\( \\|$\\)" || missing5+=("$key")
	printf '%s\n' "$CONF" | grep -q -- "^#\\?$key = " || missingc+=("$key")
done
lab_check_eq "dotgw(8) describes every option" "" "${missing8[*]}"
lab_check_eq "dotgw.conf(5) describes every key" "" "${missing5[*]}"
lab_check_eq "dotgw.conf shows every key" "" "${missingc[*]}"

lab_finish
