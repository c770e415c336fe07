#!/bin/bash
# egress_podman.test.sh - --egress for real Podman containers on a Podman bridge network
# (netavark) of the gateway, with br_netfilter on (bridge-nf-call-iptables=1, as Podman and
# Docker leave it): dotgw --scope gateway --group c=@<bridge> --egress c, both modes. In a
# container, glibc (getent) resolves an allowed name, then bash connects to that address (TCP,
# IPv4 and IPv6): it must succeed on the first SYN (the gateway counts the container's SYNs:
# exactly one); an address never resolved is dropped (and counted by the drop rule).
#
#   container A (--dns 192.0.2.53)  -- podmanN 198.51.100.129/25   [gateway: dotgw] gw-u -- up
#                                              2001:db8:100:1::1/64                         |
#   up: unbound (DoT), TCP echo servers  203.0.113.10 / 2001:db8:113::10  ok.eg.test       |
#                            203.0.113.11 / 2001:db8:113::11              never resolved    |
#
# Podman keeps everything in this run's directory and runs the containers from a root made of
# this machine's binaries, as podman_bridge.test.sh does (see there).
#
# Usage: egress_podman.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" podman nsenter ldd getent sleep bash timeout python3 curl
[ -x /usr/lib/podman/netavark ] || command -v netavark >/dev/null ||
	lab_skip "needs netavark (Podman's network backend)"
lab_require_dotgw "${1:-}"
lab_tmpdir
ZONE="$LAB_DIR/eg.test.zone"
cat >"$ZONE" <<'EOF'
$TTL 300
eg.test. SOA ns.eg.test. host.eg.test. 1 3600 600 86400 300
eg.test. NS ns.eg.test.
ns.eg.test. A 203.0.113.2
ok.eg.test. A 203.0.113.10
ok.eg.test. AAAA 2001:db8:113::10
EOF
chmod 644 "$ZONE"
# shellcheck disable=SC2034 # read by lab_start_upstream
LAB_UP_EXTRA_CONF="
	local-zone: \"eg.test.\" transparent
auth-zone:
	name: \"eg.test.\"
	zonefile: \"$ZONE\"
	for-upstream: yes
	for-downstream: no
	fallback-enabled: no"
lab_setup

# shellcheck source=podman_lab.sh
. "$(dirname "$0")/podman_lab.sh"
pd_lab_setup "$(command -v getent)" "$(command -v sleep)" "$(command -v bash)" \
	"$(command -v timeout)"
ip -n "$NS_UP" addr add 203.0.113.10/24 dev "$LAB_IF_UP" &&
	ip -n "$NS_UP" addr add 203.0.113.11/24 dev "$LAB_IF_UP" &&
	ip -n "$NS_UP" addr add 2001:db8:113::10/64 dev "$LAB_IF_UP" nodad &&
	ip -n "$NS_UP" addr add 2001:db8:113::11/64 dev "$LAB_IF_UP" nodad ||
	lab_bail "the servers' addresses"
lab_bg "$NS_UP" "$LAB_DIR/echo.log" python3 "$(dirname "$0")/tcpcheck.py" serve \
	0.0.0.0 8080 :: 8080
lab_wait_until 50 lab_in "$NS_UP" python3 -c \
	'import socket; socket.create_connection(("203.0.113.10", 8080), 1)' ||
	lab_bail "the echo servers did not start"

# The gateway counts the SYNs the containers send to port 8080, before conntrack and before
# any policy: one SYN for a connect that succeeded means no retransmission was needed.
lab_in "$NS_GW" nft -f - <<'EOF' || lab_bail "the SYN counter"
table inet egp_syn {
	counter syn4 { }
	counter syn6 { }
	chain pre {
		type filter hook prerouting priority -400; policy accept;
		ip saddr 198.51.100.128/25 tcp dport 8080 tcp flags & (syn | ack) == syn counter name "syn4"
		ip6 saddr 2001:db8:100:1::/64 tcp dport 8080 tcp flags & (syn | ack) == syn counter name "syn6"
	}
}
EOF
syns() { lab_in "$NS_GW" nft list counter inet egp_syn "syn$1" | awk '$1 == "packets" { print $2 }'; }

A="$LAB_ID-a"
start_ctr "$A" --dns "$LAB_DECOY4" ||
	lab_skip "podman cannot run a container on a bridge network here: $LAB_OUT"

# resolve V: getent in the container (A or AAAA of ok.eg.test, asked over UDP/IPv4)
resolve()
{
	pd exec "$A" getent "ahostsv$1" ok.eg.test
	printf '%s\n' "$LAB_OUT" | awk 'NR == 1 { print $1 }'
}
# conn ADDR: bash in the container connects to ADDR port 8080 and reads the echo (at most
# 3 s: a dropped SYN is retransmitted after 1 s, so a connect that needed that still shows)
conn()
{
	pd exec "$A" timeout 3 bash -c "exec 3<>/dev/tcp/$1/8080 && echo x >&3 &&
		read -r -t 2 r <&3 && echo \"ECHO \$r\"" 2>&1
	printf '%s\n' "$LAB_OUT" | grep -q '^ECHO x$' && echo ECHO || echo "FAIL $LAB_RC"
}
# conn_first V ADDR: conn, then the count of SYNs it sent: "ECHO syns 1" for the first SYN
conn_first()
{
	local before r
	before=$(syns "$1")
	r=$(conn "$2")
	echo "$r syns $(($(syns "$1") - before))"
}

lab_log "without dotgw: every address is reachable from the container (the checks can fail)"
lab_check_eq "no dotgw: an address never resolved is reachable" "ECHO" "$(conn 203.0.113.11)"
lab_check_eq "no dotgw: so is the IPv6 server" "ECHO" "$(conn 2001:db8:113::10)"
lab_check_eq "no dotgw: and the other IPv6 address" "ECHO" "$(conn 2001:db8:113::11)"

for mode in tproxy nfqueue; do
	args=("${LAB_DOTGW_ARGS[@]}" --mode "$mode" --scope gateway --interface "$BR"
		--group "c=@$BR" --egress c --query-log --metrics 127.0.0.1:9853)
	[ "$mode" = nfqueue ] && args+=(--queues 1)
	lab_log "$mode: Podman containers on $BR, group c=@$BR with --egress"
	lab_start_dotgw "${args[@]}" || continue
	lab_check_match "$mode: the egress forward chain jumps for the bridge" \
		"iifname \"$BR\" jump g0" "$(lab_in "$NS_GW" nft list chain inet dotgw_egress forward)"
	lab_check_match "$mode: an address never resolved: dropped" '^FAIL 124 syns [1-9]$' \
		"$(conn_first 4 203.0.113.11)"
	lab_check_eq "$mode: getent ahostsv4 ok.eg.test in the container" 203.0.113.10 \
		"$(resolve 4)"
	lab_check_eq "$mode: ...then a connect to it: on the first SYN" "ECHO syns 1" \
		"$(conn_first 4 203.0.113.10)"
	lab_check_eq "$mode: getent ahostsv6 ok.eg.test" 2001:db8:113::10 "$(resolve 6)"
	lab_check_eq "$mode: ...then a connect to it over IPv6: on the first SYN" "ECHO syns 1" \
		"$(conn_first 6 2001:db8:113::10)"
	# the two drops at the same time (each waits its 3 s; each family has its SYN counter)
	conn_first 4 203.0.113.11 >"$LAB_DIR/drop4.out" 2>&1 &
	drop4=$!
	conn_first 6 2001:db8:113::11 >"$LAB_DIR/drop6.out" 2>&1 &
	wait "$drop4" "$!"
	lab_check_match "$mode: still dropped: the address never resolved" '^FAIL 124 syns [1-9]$' \
		"$(cat "$LAB_DIR/drop4.out")"
	lab_check_match "$mode: ...and over IPv6" '^FAIL 124 syns [1-9]$' \
		"$(cat "$LAB_DIR/drop6.out")"
	lab_check_match "$mode: dotgw logged the container's queries" \
		'query 198\.51\.100\.[0-9]+:[0-9]+ ok\.eg\.test\. 28 NOERROR udp ' "$(cat "$DOTGW_LOG")"
	M=$(lab_in "$NS_GW" curl -s http://127.0.0.1:9853/metrics)
	lab_check_match "$mode: metrics: elements added" \
		'dotgw_egress_added_total\{group="c"\} [1-9]' "$M"
	lab_check_match "$mode: metrics: the drops counted" \
		'dotgw_egress_dropped_total\{group="c"\} [1-9]' "$M"
	lab_stop_dotgw
	lab_check_eq "$mode: dotgw exits 0" 0 "$?"
done
lab_finish
