#!/bin/bash
# egress_rules.test.sh - the egress table (egress_rules.c, nftset.c) against real traffic: a
# client behind the lab's gateway opens TCP connections to servers on the upstream's side.
# tests/unit/egress_rules_check.c applies the table and adds elements; this script sends the
# traffic and reads the table back with nft.
#  - fail closed: an address in the group's set is reachable on the first try, one that is not
#    is dropped and counted, a static allow prefix is reachable, port 53 passes;
#  - an established connection outlives its element; a new one to that address is dropped;
#  - applying the table again (changed) keeps the set's elements and drops the stale objects;
#  - fail open: the table is owned by dotgw's socket, another socket cannot add to it, and it
#    goes when the socket closes.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" python3
lab_require_dotgw "${1:-}"
CHECK=$(dirname "$DOTGW")/tests/egress_rules_check
[ -x "$CHECK" ] || lab_bail "$CHECK is missing (built with the tests)"
lab_setup
T=dotgw_egress_test

# servers: 203.0.113.10-.12 port 8080 (echo), .11 port 53 (TCP, accepts), on the upstream
for a in 10 11 12; do ip -n "$NS_UP" addr add "203.0.113.$a/24" dev u0; done
TCPCHECK=$(dirname "$0")/tcpcheck.py
lab_bg "$NS_UP" "$LAB_DIR/echo.log" python3 "$TCPCHECK" serve 0.0.0.0 8080 203.0.113.11 53
conn() { lab_in "$NS_CLIENT" timeout 5 python3 "$TCPCHECK" conn "$@"; }
lab_wait_until 50 lab_in "$NS_UP" python3 -c 'import socket; socket.create_connection(("203.0.113.10", 8080), 1)' ||
	lab_bail "the echo servers did not start"

lab_in "$NS_GW" "$CHECK" "$T" closed1 203.0.113.10 >"$LAB_DIR/c1.out" 2>&1
lab_check_eq "closed1: applied, 203.0.113.10 added" 0 $?
lab_in "$NS_GW" nft list table inet "$T" >"$LAB_DIR/t1.nft"
lab_indent <"$LAB_DIR/t1.nft"
lab_check_match "group 0 has a timeout set of its size" 'set e0_4 \{[^}]*type ipv4_addr[^}]*size 1000' \
	"$(tr '\n\t' '  ' <"$LAB_DIR/t1.nft")"
lab_check_match "the forward chain sends the group's clients to g0" 'ip saddr 198.51.100.0/24 jump g0' \
	"$(cat "$LAB_DIR/t1.nft")"
lab_check_match "a client of the group without egress returns" 'ip6 saddr 2001:db8:100::/64 return' \
	"$(cat "$LAB_DIR/t1.nft")"

lab_check_match "an address in the set: connected on the first SYN" '^ECHO1 ok' "$(conn 203.0.113.10 8080)"
lab_check_match "an address not in the set: dropped" '^FAIL' "$(conn 203.0.113.11 8080)"
lab_check_match "the static allow prefix: connected" '^ECHO1 ok' "$(conn 203.0.113.12 8080)"
lab_check_match "TCP port 53 passes (dotgw captures DNS itself)" '^ECHO1 ok' "$(conn 203.0.113.11 53)"
drops=$(lab_in "$NS_GW" nft list counter inet "$T" c0 | awk '/packets/ {print $2}')
lab_check_num "the drop is counted in c0" "$drops" -ge 1

# established outlives its element
rm -f "$LAB_DIR/flag"
lab_in "$NS_CLIENT" timeout 20 python3 "$TCPCHECK" conn 203.0.113.10 8080 "" "$LAB_DIR/flag" \
	>"$LAB_DIR/held.out" 2>&1 &
held=$!
lab_wait_until 50 grep -q ECHO1 "$LAB_DIR/held.out" || lab_fail "the held connection did not start"
lab_in "$NS_GW" nft delete element inet "$T" e0_4 '{ 203.0.113.10 }'
touch "$LAB_DIR/flag"
wait "$held"
lab_check_match "an established connection outlives its element" 'ECHO2 ok' "$(cat "$LAB_DIR/held.out")"
lab_check_match "a new connection to that address is dropped" '^FAIL' "$(conn 203.0.113.10 8080)"

# applied again, changed: elements stay, stale objects go
lab_in "$NS_GW" "$CHECK" "$T" closed1 203.0.113.10 198.51.100.77 >/dev/null 2>&1
lab_in "$NS_GW" "$CHECK" "$T" closed2 >"$LAB_DIR/c2.out" 2>&1
lab_check_eq "closed2: applied again" 0 $?
lab_in "$NS_GW" nft list table inet "$T" >"$LAB_DIR/t2.nft"
lab_check_match "the elements stayed" '203\.0\.113\.10.*198\.51\.100\.77|198\.51\.100\.77.*203\.0\.113\.10' \
	"$(lab_in "$NS_GW" nft list set inet "$T" e0_4 | tr '\n' ' ')"
lab_check_nomatch "the allow prefix is gone" '203\.0\.113\.12' "$(cat "$LAB_DIR/t2.nft")"
lab_check_match "group 1 got its chain" 'chain g1' "$(cat "$LAB_DIR/t2.nft")"
lab_check_match "the allow prefix is no longer reachable" '^FAIL' "$(conn 203.0.113.12 8080)"
lab_check_match "the kept element still works" '^ECHO1 ok' "$(conn 203.0.113.10 8080)"
lab_in "$NS_GW" nft delete table inet "$T"

# fail open: owned by dotgw's socket
mkfifo "$LAB_DIR/hold"
lab_in "$NS_GW" "$CHECK" "$T" open 203.0.113.10 <"$LAB_DIR/hold" >"$LAB_DIR/open.out" 2>&1 &
openpid=$!
exec 3>"$LAB_DIR/hold"
lab_wait_until 50 grep -q '^c0 ' "$LAB_DIR/open.out" || lab_fail "open: no counter line"
lab_check_match "open: the owned table holds the element added through its owner" '203\.0\.113\.10' \
	"$(lab_in "$NS_GW" nft list set inet "$T" e0_4 | tr '\n' ' ')"
lab_check_match "open: a connection to it works" '^ECHO1 ok' "$(conn 203.0.113.10 8080)"
exec 3>&-
wait "$openpid"
lab_check_eq "open: the owner could add, another socket could not" 0 $?
lab_indent <"$LAB_DIR/open.out"
lab_check_eq "open: the table went with its socket" 1 \
	"$(lab_in "$NS_GW" nft list table inet "$T" >/dev/null 2>&1; echo $?)"
lab_finish
