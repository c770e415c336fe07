#!/bin/bash
# egress.test.sh - --egress: a client group may open connections only to what answers dotgw
# gave it, enforced in nftables, with no race (the answer leaves after the kernel has the
# element). Gateway scope, both modes; servers (TCP echo) on the upstream's side:
#   203.0.113.10 / 2001:db8:113::10  ok.eg.test (A, AAAA), also the end of a CNAME chain
#   203.0.113.11                     never resolved (and a DoT port 853 there)
#   203.0.113.13                     short.eg.test, TTL 2
#   203.0.113.14                     denied.eg.test (the group's --deny)
#   203.0.113.15                     other.eg.test, resolved only by group "g2"
# The upstream serves eg.test through an auth-zone for its iterator, so the CNAME chain comes
# back whole, as from a real resolver.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" python3 curl
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
c1.eg.test. CNAME c2.eg.test.
c2.eg.test. CNAME ok.eg.test.
short.eg.test. 2 A 203.0.113.13
denied.eg.test. A 203.0.113.14
other.eg.test. A 203.0.113.15
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
C2=198.51.100.3 # the client of group g2
ip -n "$NS_CLIENT" addr add "$C2/24" dev "$LAB_IF_CLIENT"
for a in 10 11 13 14 15; do ip -n "$NS_UP" addr add "203.0.113.$a/24" dev "$LAB_IF_UP"; done
ip -n "$NS_UP" addr add 2001:db8:113::10/64 dev "$LAB_IF_UP" nodad

TCPCHECK=$(dirname "$0")/tcpcheck.py
lab_bg "$NS_UP" "$LAB_DIR/echo.log" python3 "$TCPCHECK" serve 0.0.0.0 8080 :: 8080 \
	203.0.113.11 853
conn() { lab_in "$NS_CLIENT" timeout 5 python3 "$TCPCHECK" conn "$@"; }
udp() { lab_in "$NS_CLIENT" timeout 5 python3 "$TCPCHECK" udp "$@"; }
q() { lab_in "$NS_CLIENT" dig +short +time=2 +tries=1 "$@" 2>&1 | xargs; }
# probe NAME conn|udp ARGS...: run a probe in the background (probed NAME: its output), so that
# the drop checks wait out their 1.5 s at the same time; probes_wait: wait for them all
PROBES=()
probe()
{
	local name=$1
	shift
	"$@" >"$LAB_DIR/probe-$name.out" 2>&1 &
	PROBES+=($!)
}
probes_wait()
{
	wait "${PROBES[@]}"
	PROBES=()
}
probed() { cat "$LAB_DIR/probe-$1.out"; }
lab_wait_until 50 lab_in "$NS_UP" python3 -c \
	'import socket; socket.create_connection(("203.0.113.10", 8080), 1)' ||
	lab_bail "the echo servers did not start"

# before: without --egress every address is reachable (the test of the policy, not the lab)
lab_check_match "no dotgw: an address never resolved is reachable" '^ECHO1 ok' \
	"$(conn 203.0.113.11 8080)"
lab_check_match "no dotgw: so is the IPv6 server" '^ECHO1 ok' "$(conn 2001:db8:113::10 8080)"
lab_check_match "no dotgw: and UDP to it" '^UDP ok' "$(udp 203.0.113.11 8080)"

for mode in tproxy nfqueue; do
	lab_log "mode $mode"
	lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --mode "$mode" --scope gateway \
		--interface "$LAB_GW_IF_CLIENT" \
		--group "kids=$LAB_CLIENT4/32,$LAB_CLIENT6/128" --egress kids \
		--deny kids:denied.eg.test --egress-grace 4 \
		--group "g2=$C2/32" --egress g2 --metrics 127.0.0.1:9853 || continue
	E=dotgw_egress
	lab_check_match "$mode: the egress table has the group's sets" 'set e0_4' \
		"$(lab_in "$NS_GW" nft list table inet "$E")"

	lab_check_eq "$mode: a resolved name" "203.0.113.10" "$(q @"$LAB_DECOY4" ok.eg.test A)"
	lab_check_match "$mode: ...is reachable on the first SYN" '^ECHO1 ok retrans 0$' \
		"$(conn 203.0.113.10 8080)"
	lab_check_eq "$mode: AAAA" "2001:db8:113::10" "$(q @"$LAB_DECOY4" ok.eg.test AAAA)"
	lab_check_match "$mode: ...reachable on the first SYN (IPv6)" '^ECHO1 ok retrans 0$' \
		"$(conn 2001:db8:113::10 8080)"
	lab_check_match "$mode: UDP to the resolved address" '^UDP ok' "$(udp 203.0.113.10 8080)"
	lab_check_match "$mode: UDP to the resolved IPv6 address" '^UDP ok' \
		"$(udp 2001:db8:113::10 8080)"
	# TTL 2 + grace 4: a new connection after 6 s is dropped, an established one stays. The
	# element expires while the checks below run (they do not touch 203.0.113.13).
	lab_check_eq "$mode: short.eg.test (TTL 2)" "203.0.113.13" \
		"$(q @"$LAB_DECOY4" short.eg.test A)"
	rm -f "$LAB_DIR/flag"
	lab_in "$NS_CLIENT" timeout 70 python3 "$TCPCHECK" conn 203.0.113.13 8080 "" \
		"$LAB_DIR/flag" >"$LAB_DIR/held.out" 2>&1 &
	held=$!
	lab_wait_until 50 grep -q ECHO1 "$LAB_DIR/held.out" || lab_fail "$mode: no held connection"

	lab_check_eq "$mode: a denied name: NXDOMAIN" "NXDOMAIN" \
		"$(lab_in "$NS_CLIENT" dig +time=2 +tries=1 @"$LAB_DECOY4" denied.eg.test A |
			sed -n 's/.*status: \([A-Z]*\),.*/\1/p')"
	# the drops, probed at the same time (each waits its own 1.5 s for an answer)
	probe never conn 203.0.113.11 8080
	probe never-udp udp 203.0.113.11 8080
	probe dot conn 203.0.113.11 853
	probe denied conn 203.0.113.14 8080
	probe g2 conn 203.0.113.10 8080 "$C2"
	probes_wait
	lab_check_match "$mode: an address never resolved: dropped" '^FAIL' "$(probed never)"
	lab_check_match "$mode: ...UDP to it too" '^FAIL' "$(probed never-udp)"
	lab_check_match "$mode: DoT to a resolver of the client's own: dropped" '^FAIL' \
		"$(probed dot)"
	lab_check_match "$mode: ...and no element: its address is dropped" '^FAIL' \
		"$(probed denied)"
	lab_check_match "$mode: an address resolved only for kids: g2 is dropped" '^FAIL' \
		"$(probed g2)"
	lab_check_eq "$mode: g2 asks a CNAME chain that ends there" \
		"c2.eg.test. ok.eg.test. 203.0.113.10" "$(q -b "$C2" @"$LAB_DECOY4" c1.eg.test A)"
	lab_check_match "$mode: ...now g2 reaches it, first SYN" '^ECHO1 ok retrans 0$' \
		"$(conn 203.0.113.10 8080 "$C2")"
	lab_check_eq "$mode: g2 resolves other.eg.test" "203.0.113.15" \
		"$(q -b "$C2" @"$LAB_DECOY4" other.eg.test A)"
	lab_check_match "$mode: ...g2 reaches it" '^ECHO1 ok' "$(conn 203.0.113.15 8080 "$C2")"
	lab_check_match "$mode: ...kids, which never resolved it, do not" '^FAIL' \
		"$(conn 203.0.113.15 8080)"
	lab_check_eq "$mode: kids ask it over TCP: a cache hit" "203.0.113.15" \
		"$(q +tcp @"$LAB_DECOY4" other.eg.test A)"
	lab_check_match "$mode: ...the hit put it in kids' set: reached on the first SYN" \
		'^ECHO1 ok retrans 0$' "$(conn 203.0.113.15 8080)"

	gone() { ! lab_in "$NS_GW" nft list set inet "$E" e0_4 | grep -q '203\.0\.113\.13'; }
	lab_ok "$mode: the element expires after TTL + grace" lab_wait_until 150 gone
	lab_check_match "$mode: ...a new connection is dropped" '^FAIL' "$(conn 203.0.113.13 8080)"
	touch "$LAB_DIR/flag"
	wait "$held"
	lab_check_match "$mode: ...an established one stays up" 'ECHO2 ok' "$(cat "$LAB_DIR/held.out")"

	M=$(lab_in "$NS_GW" curl -s http://127.0.0.1:9853/metrics)
	lab_check_match "$mode: metrics: elements added" 'dotgw_egress_added_total\{group="kids"\} [1-9]' "$M"
	lab_check_match "$mode: metrics: drops counted" 'dotgw_egress_dropped_total\{group="kids"\} [1-9]' "$M"
	nheld=$(printf '%s\n' "$M" | awk '$1 == "dotgw_egress_held_total{group=\"kids\"}" { print $2 }')
	lab_check_match "$mode: metrics: every held answer timed" \
		"^dotgw_egress_hold_seconds_count\\{group=\"kids\"\\} ${nheld:-none}\$" "$M"
	lab_check_match "$mode: --show-egress" '203\.0\.113\.10' \
		"$(lab_in "$NS_GW" "$DOTGW" --config none --group "kids=$LAB_CLIENT4/32" --egress kids \
			--show-egress kids 2>&1)"

	# reload: the elements stay
	lab_in "$NS_GW" nft list set inet "$E" e0_4 >"$LAB_DIR/before.txt"
	kill -HUP "$DOTGW_PID"
	lab_ok "$mode: reloaded" lab_wait_until 50 grep -q "reloaded" "$DOTGW_LOG"
	lab_check_match "$mode: after a reload the elements are there" '203\.0\.113\.10' \
		"$(lab_in "$NS_GW" nft list set inet "$E" e0_4)"
	lab_check_match "$mode: ...and reachable" '^ECHO1 ok' "$(conn 203.0.113.10 8080)"
	lab_stop_dotgw
	lab_check_eq "$mode: fail open: the egress table went with dotgw" 1 \
		"$(lab_in "$NS_GW" nft list table inet "$E" >/dev/null 2>&1; echo $?)"
done

# fail closed: a restart keeps the elements (the new process adopts the table): the policed
# client keeps its reachability across it, and the block too
lab_log "fail closed: stop, restart, --remove-rules"
EG_ARGS=(--mode tproxy --scope gateway --interface "$LAB_GW_IF_CLIENT" --fail closed
	--group "kids=$LAB_CLIENT4/32" --egress kids)
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" "${EG_ARGS[@]}"
lab_check_eq "closed: resolved" "203.0.113.10" "$(q @"$LAB_DECOY4" ok.eg.test A)"
lab_stop_dotgw
lab_check_match "closed, dotgw stopped: the element still lets the client in" '^ECHO1 ok' \
	"$(conn 203.0.113.10 8080)"
lab_check_match "closed, dotgw stopped: the rest is still dropped" '^FAIL' \
	"$(conn 203.0.113.11 8080)"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" "${EG_ARGS[@]}"
lab_check_match "closed, restarted: the element was adopted, not started empty" \
	'203\.0\.113\.10' "$(lab_in "$NS_GW" nft list set inet dotgw_egress e0_4)"
lab_check_match "closed, restarted: reachable without asking again" '^ECHO1 ok' \
	"$(conn 203.0.113.10 8080)"
lab_stop_dotgw
lab_run "$NS_GW" "$DOTGW" --remove-rules
lab_check_eq "--remove-rules removes the egress table too" 1 \
	"$(lab_in "$NS_GW" nft list table inet dotgw_egress >/dev/null 2>&1; echo $?)"

# host scope: this machine's own processes in a group (the output path)
lab_log "host scope"
LAB_DOTGW_NS=$NS_CLIENT lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --mode tproxy --scope host \
	--group "me=$LAB_CLIENT4/32" --egress me
lab_check_eq "host: resolved" "203.0.113.10" "$(q @"$LAB_DECOY4" ok.eg.test A)"
lab_check_match "host: reachable on the first SYN" '^ECHO1 ok retrans 0$' \
	"$(conn 203.0.113.10 8080 "$LAB_CLIENT4")"
lab_check_match "host: never resolved: dropped" '^FAIL' "$(conn 203.0.113.11 8080 "$LAB_CLIENT4")"
LAB_DOTGW_NS=$NS_CLIENT lab_stop_dotgw
lab_finish
