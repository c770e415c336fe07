#!/bin/bash
# upstream_quickack.test.sh - dotgw ACKs the upstream's answers as soon as it has read them
# (TCP_QUICKACK after each burst of reads), instead of holding the ACK for its next query.
# unbound 1.17 sends DoT answers with Nagle on: while one answer is unacknowledged it holds the
# next, so with delayed ACKs every answer waited for the query after it (issue 17).
#
#   client (dnsperf, 500 q/s) --- gw-c [gateway: dotgw --pool-size 1] gw-u --- upstream
#                                       ss -ti: segs_out - data_segs_out     unbound DoT
#                                       of the connection = pure ACKs
#
# The queries go out every 2 ms, far below the 40 ms of delayed ACK: a gateway that waits
# sends nearly no pure ACK (its ACKs ride on its queries); one that ACKs at once sends one for
# (nearly) every burst of answers read. Only segment counts are judged, no timing.
#
# Usage: upstream_quickack.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" ss dnsperf
lab_require_dotgw "${1:-}"
lab_setup

QUERIES=1000

# conn_counters: "segs_out data_segs_out data_segs_in" of dotgw's one connection to :853
conn_counters()
{
	ip netns exec "$NS_GW" ss -Htni state established "( dport = :853 )" |
		awk '{ for (i = 1; i <= NF; i++) { split($i, kv, ":"); v[kv[1]] = kv[2] } }
		     END { print v["segs_out"] + 0, v["data_segs_out"] + 0, v["data_segs_in"] + 0 }'
}

conn_count()
{
	ip netns exec "$NS_GW" ss -Htn state established "( dport = :853 )" | wc -l
}

lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" \
	--pool-size 1 --standby 0 --idle-timeout 60000 --log-level info || lab_finish
lab_dig "$NS_CLIENT" @"$LAB_UP4" warm.bench.test A
lab_check_eq "a first query is answered" "NOERROR 203.0.113.99 from $LAB_UP4#53 (UDP)" \
	"$(lab_dig_summary A)"
lab_check_eq "dotgw has one connection to the upstream" 1 "$(conn_count)"

awk -v n="$QUERIES" 'BEGIN { for (i = 0; i < n; i++) printf "qa-%d.bench.test A\n", i }' \
	>"$LAB_DIR/names"
read -r so0 dso0 dsi0 <<<"$(conn_counters)"
lab_run "$NS_CLIENT" dnsperf -s "$LAB_UP4" -p 53 -d "$LAB_DIR/names" -n 1 -c 1 -Q 500 \
	-l 10 -t 3
lab_check_match "dnsperf: all $QUERIES queries answered" "Queries completed: *$QUERIES " "$LAB_OUT"
read -r so1 dso1 dsi1 <<<"$(conn_counters)"
lab_check_eq "still one connection to the upstream" 1 "$(conn_count)"

acks=$(((so1 - dso1) - (so0 - dso0)))
answers=$((dsi1 - dsi0))
lab_log "on dotgw's connection: $answers segments of answers in, $acks pure ACKs out" \
	"($((dso1 - dso0)) segments of queries out)"
lab_check_num "the upstream sent answers on the connection" "$answers" -ge $((QUERIES / 2))
lab_check_num "dotgw ACKed at least half of the answer segments at once (pure ACKs)" \
	$((2 * acks)) -ge "$answers"
lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"
lab_finish
