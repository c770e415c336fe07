#!/bin/bash
# boot-check.sh - run the Debian package under a real systemd, sandbox and all, without
# touching this machine: mmdebstrap a Debian 12 root into a temporary directory, dpkg -i the
# package there, and boot it with systemd-nspawn in a private network namespace (only lo and a
# veth pair made inside). A probe unit in the container then checks that dotgw.service starts
# and drops privileges, captures DNS in tproxy and nfqueue modes, reloads (good and bad
# configuration), stops (fail open and closed), restarts on upgrade, and that remove and purge
# clean up. Not part of ctest: it needs mmdebstrap, systemd-container and a Debian mirror, and
# takes about two minutes.
#
#   mmdebstrap bookworm ROOT --> dpkg -i dotgw_*.deb (in ROOT) --> systemd-nspawn -b
#                                                   --private-network: [ lo, v0 192.0.2.1/24 ]
#
# Usage (as root): packaging/boot-check.sh PATH-TO-dotgw_*.deb   (from 'cpack -G DEB')
# Exit status: 0 all checks passed, 1 a check failed, 77 a tool or privilege is missing.
set -u

DEB=${1:-}
if [ -z "$DEB" ] || [ ! -r "$DEB" ]; then
	echo "usage: $0 PATH-TO-dotgw_VERSION_ARCH.deb" >&2
	exit 2
fi
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (mmdebstrap, systemd-nspawn)"; exit 77; }
for t in mmdebstrap systemd-nspawn dpkg-deb; do
	command -v "$t" >/dev/null || { echo "SKIP: needs '$t'"; exit 77; }
done

DIR=$(mktemp -d "${TMPDIR:-/tmp}/dotgw-boot.XXXXXX") || exit 1
cleanup()
{
	rm -rf -- "$DIR"
}
trap cleanup EXIT
ROOT="$DIR/root"
cp -- "$DEB" "$DIR/dotgw.deb"

# The package's run-time libraries, as its Depends field names them (versions dropped).
LIBS=$(dpkg-deb -f "$DEB" Depends | tr ',' '\n' | sed -E 's/\(.*\)//; s/[[:space:]]//g' |
	grep -v '^$' | paste -sd, -)
echo "# building a Debian 12 root with systemd and $LIBS"
# shellcheck disable=SC2016 # "$1" is the hook's argument, expanded by mmdebstrap's shell
if ! mmdebstrap --variant=apt \
	--include="systemd,systemd-sysv,ca-certificates,nftables,iproute2,dnsutils,$LIBS" \
	--customize-hook="copy-in $DIR/dotgw.deb /root" \
	--customize-hook='chroot "$1" dpkg -i /root/dotgw.deb' \
	bookworm "$ROOT" >"$DIR/mmdebstrap.log" 2>&1; then
	tail -n 20 "$DIR/mmdebstrap.log"
	echo "FAIL  mmdebstrap"
	exit 1
fi

cat >"$ROOT/root/probe.sh" <<'EOF'
#!/bin/bash
# Inside the container. Prints "ok"/"FAIL" lines and a tally to /root/probe.out.
exec >/root/probe.out 2>&1
pass=0 fail=0
ok() { if eval "$2"; then echo "ok    $1"; pass=$((pass + 1)); else echo "FAIL  $1"; fail=$((fail + 1)); fi; }
readies() { journalctl -b -u dotgw -o cat | grep -c ' ready:'; }
wait_ready() { for _ in $(seq 1 50); do [ "$(readies)" -ge "$1" ] && return 0; sleep 0.2; done; return 1; }
ip link add v0 type veth peer name v1 && ip addr add 192.0.2.1/24 dev v0 &&
	ip link set v0 up && ip link set v1 up && ip route add default via 192.0.2.254 dev v0

systemctl start dotgw
ok "dotgw.service starts and logs ready" "wait_ready 1"
PID=$(systemctl show -p MainPID --value dotgw)
ok "runs as user dotgw" "grep -Eq '^Uid:[[:space:]]+$(id -u dotgw)[[:space:]]' /proc/$PID/status"
ok "keeps CAP_NET_ADMIN and CAP_NET_BIND_SERVICE only" "grep -q '^CapEff:.*0000000000001400' /proc/$PID/status"
ok "seccomp filter and no_new_privs" "grep -q '^Seccomp:.*2' /proc/$PID/status && grep -q '^NoNewPrivs:.*1' /proc/$PID/status"
ok "tproxy: a query to 192.0.2.53 is answered by dotgw (SERVFAIL: no upstream here)" \
	"dig @192.0.2.53 www.example.com +time=5 +tries=1 | grep -q 'status: SERVFAIL'"
systemctl reload dotgw; sleep 1
ok "reload" "journalctl -b -u dotgw -o cat | grep -q 'reloaded /etc/dotgw/dotgw.conf'"
echo 'bogus = 1' >>/etc/dotgw/dotgw.conf
systemctl reload dotgw; sleep 1
ok "a bad reload is refused and dotgw runs on" \
	"journalctl -b -u dotgw -o cat | grep -q 'reload failed' && systemctl -q is-active dotgw"
sed -i '/^bogus/d' /etc/dotgw/dotgw.conf
systemctl stop dotgw
ok "stop (fail open) removes the table and the rule" "[ -z \"\$(nft list tables)\" ] && ! ip rule | grep -q 0xd07"

sed -i 's/^#mode = tproxy/mode = nfqueue/; s/^#fail = open/fail = closed/' /etc/dotgw/dotgw.conf
systemctl start dotgw
ok "nfqueue, fail closed: starts" "wait_ready 2"
ok "nfqueue: a query is answered by dotgw" \
	"dig @192.0.2.53 www.example.com +time=5 +tries=1 | grep -q 'status: SERVFAIL'"
systemctl stop dotgw
ok "stop (fail closed) leaves the table" "nft list tables | grep -q 'inet dotgw'"

systemctl start dotgw; wait_ready 3
dpkg -i /root/dotgw.deb >/dev/null
ok "an upgrade restarts a running dotgw" "wait_ready 4 && systemctl -q is-active dotgw"
echo 'bogus = 1' >>/etc/dotgw/dotgw.conf
systemctl restart dotgw; sleep 3
ok "a bad configuration fails with status 2 and no restart loop" \
	"[ \"\$(systemctl show -p ExecMainStatus --value dotgw)\" = 2 ] && [ \"\$(systemctl show -p NRestarts --value dotgw)\" = 0 ]"
sed -i '/^bogus/d' /etc/dotgw/dotgw.conf
systemctl start dotgw; wait_ready 5; systemctl enable -q dotgw
dpkg -r dotgw >/dev/null
ok "remove stops dotgw and lifts the fail-closed block" \
	"! systemctl -q is-active dotgw && [ -z \"\$(nft list tables)\" ] && ! ip rule | grep -q 0xd07"
dpkg -P dotgw >/dev/null
ok "purge removes the configuration and the enablement, keeps the user" \
	"[ ! -e /etc/dotgw ] && [ ! -e /etc/systemd/system/multi-user.target.wants/dotgw.service ] && getent passwd dotgw >/dev/null"
echo "$pass passed, $fail failed"
EOF
chmod 755 "$ROOT/root/probe.sh"
cat >"$ROOT/etc/systemd/system/probe.service" <<'EOF'
[Unit]
Description=boot-check probe of dotgw.service
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/root/probe.sh
ExecStopPost=/bin/systemctl --no-block poweroff
[Install]
WantedBy=multi-user.target
EOF
ln -s /etc/systemd/system/probe.service "$ROOT/etc/systemd/system/multi-user.target.wants/"

echo "# booting it (private network namespace)"
timeout 300 systemd-nspawn -q -D "$ROOT" --private-network --register=no --keep-unit \
	-M "dotgw-boot-$$" -b </dev/null >"$DIR/nspawn.log" 2>&1
if [ ! -s "$ROOT/root/probe.out" ]; then
	tail -n 30 "$DIR/nspawn.log"
	echo "FAIL  the probe did not run"
	exit 1
fi
cat "$ROOT/root/probe.out"
grep -q '^[0-9]* passed, 0 failed$' "$ROOT/root/probe.out"
