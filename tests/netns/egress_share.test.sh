#!/bin/bash
# egress_share.test.sh - cache hits of an --egress group's client are answered while its
# in-flight share is full of slow misses: a hit has its answer and waits only for the group's
# nftables sets, so it takes no place in the share. Before the fix every such hit was counted
# in the share: past the share's waiting room it got SERVFAIL (client_overload), and a waiting
# one could be handed a place meant for a query to the upstream (read in the code, not seen).
#
#   client 198.51.100.2 (group kids, --egress kids, --max-inflight-per-client 2):
#            dnsperf keeps 2 slow misses (slow.test, 50 ms at the auth server) in flight,
#            and asks each of 693 names once, 4 at a time, from the cache
#          198.51.100.3 (no group): asked the 693 names first, so they are in the cache but
#            their addresses are not yet in kids' sets: each hit of kids waits for the sets
#     --- gw-c [gateway: dotgw tproxy] gw-u --- upstream unbound --- auth unbound (netdelay)
#
# Checks (counts only): every hit NOERROR, none lost; every slow miss NOERROR; dotgw counted
# no client_overload; its upstream answers and cache hits add up to the queries; it exits 0. On the code before
# the fix, 237, 276 and 337 of the 693 hits were SERVFAIL (client_overload) in three runs.
# Usage: egress_share.test.sh PATH-TO-DOTGW

. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf cc pkg-config
lab_require_dotgw "${1:-}"
. "$(dirname "$0")/../../bench/wan.sh"

DELAY=50 # ms at the auth server, per slow miss
SECS=4   # seconds of load
OTHER4=198.51.100.3

# 693 names the upstream answers at once, each with an address of its own
NH=0
hits=""
for net in 192.0.2 203.0.113 198.51.100; do
	for ((j = 10; j <= 240; j++)); do
		NH=$((NH + 1))
		hits+="	local-data: \"h$NH.hit.test. 300 A $net.$j\"
"
	done
done
LAB_UP_EXTRA_CONF="$hits$WAN_SLOW_UP_CONF"
lab_setup
ip -n "$NS_CLIENT" addr add "$OTHER4/24" dev "$LAB_IF_CLIENT" || lab_bail "adding $OTHER4"
wan_slow_auth_start "$DELAY" || lab_bail "the slow auth server (bench/wan.sh)"
awk 'BEGIN { for (i = 0; i < 20000; i++) printf "s%d.slow.test A\n", i }' >"$LAB_DIR/slow.names"
awk -v n=$NH 'BEGIN { for (i = 1; i <= n; i++) printf "h%d.hit.test A\n", i }' \
	>"$LAB_DIR/hit.names"

lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --log-level info --scope gateway \
	--interface "$LAB_GW_IF_CLIENT" --group "kids=$LAB_CLIENT4/32" --egress kids \
	--max-inflight-per-client 2 --timeout 5000 || lab_bail "dotgw did not start"
lab_run "$NS_CLIENT" dnsperf -s "$LAB_DECOY4" -a "$OTHER4" -d "$LAB_DIR/hit.names" -n 1 -q 1 \
	-t 5
printf '%s\n' "$LAB_OUT" >"$LAB_DIR/warm.out"
read -r _ _ _ warm _ <<<"$(lab_dnsperf_counts "$LAB_DIR/warm.out")"
lab_check_eq "the names are in the cache (asked from $OTHER4, all NOERROR)" "$NH" "$warm"
hits0=$(lab_dotgw_stat_now cache_hits)

lab_bg "$NS_CLIENT" "$LAB_DIR/slow.out" dnsperf -s "$LAB_DECOY4" -a "$LAB_CLIENT4" \
	-d "$LAB_DIR/slow.names" -q 2 -t 5 -l "$SECS"
slow=$LAB_BG_PID
lab_sleep 0.5 # the share full of slow misses
lab_run "$NS_CLIENT" dnsperf -s "$LAB_DECOY4" -a "$LAB_CLIENT4" -d "$LAB_DIR/hit.names" -n 1 \
	-q 4 -t 5 -l "$SECS"
printf '%s\n' "$LAB_OUT" >"$LAB_DIR/hit.out"
wait "$slow"
lab_bg_forget "$slow"

read -r h_sent h_done h_lost h_ok h_fail <<<"$(lab_dnsperf_counts "$LAB_DIR/hit.out")"
read -r s_sent s_done s_lost s_ok s_fail <<<"$(lab_dnsperf_counts "$LAB_DIR/slow.out")"
lab_log "hits: sent $h_sent, completed $h_done, lost $h_lost, NOERROR $h_ok, SERVFAIL $h_fail;" \
	"slow misses: sent $s_sent, completed $s_done, lost $s_lost, NOERROR $s_ok, SERVFAIL $s_fail"
lab_check_eq "every hit asked" "$NH" "$h_sent"
lab_check_eq "every hit NOERROR" "$NH" "$h_ok"
lab_check_eq "no hit lost" 0 "$h_lost"
lab_check_eq "they were cache hits" "$NH" "$(($(lab_dotgw_stat_now cache_hits) - hits0))"
lab_check_num "slow misses were in flight beside them" "$s_sent" -gt 10
lab_check_eq "every slow miss NOERROR" "$s_sent" "$s_ok"
lab_stop_dotgw
lab_check_eq "dotgw exits 0 on SIGTERM (a sanitizer's report would make it 1)" 0 "$?"
lab_check_eq "no client_overload" 0 "$(lab_dotgw_stat client_overload)"
# (the stop of a fail-open --egress run used to log "error: removing nftables table inet
# 'dotgw_egress': Operation not permitted": the table's owner socket was still open)
lab_check_eq "dotgw logged no error" 0 "$(grep -c '^error:' "$DOTGW_LOG")"
lab_check_eq "dotgw answered what it was asked (upstream answers + cache hits)" \
	"$(lab_dotgw_stat queries)" "$(($(lab_dotgw_stat answered) + $(lab_dotgw_stat cache_hits)))"
lab_finish
