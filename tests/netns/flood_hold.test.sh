#!/bin/bash
# flood_hold.test.sh - a client that floods names the upstream never resolves, for longer than
# dotgw's --timeout, has no more of them open at the upstream than its in-flight share: a query
# answered SERVFAIL at its deadline keeps its place in the share while the upstream still holds
# it (upstream_query_abandon, QUERY_HELD in frontend.c). Before, every deadline freed a share
# for another share of names, the upstream's request list grew by a share every 3 s until it
# overflowed (unbound: num-queries-per-thread), and it then dropped other clients' queries.
#
#   client 198.51.100.2 (dnsperf, 15 s of *.void.test) --.
#   client 198.51.100.3 (dig, one query a second)         -+- gw-c [gateway: dotgw] gw-u --- upstream
#                                                                    unbound: void.test goes to
#                                                                    203.0.113.250, which does
#                                                                    not exist (no answer ever)
#
# Usage: flood_hold.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf
lab_require_dotgw "${1:-}"

LAB_UP_EXTRA_CONF=$LAB_UP_VOID_CONF
lab_setup

OTHER=198.51.100.3
WORKERS=2
SHARE=128
RATE=1400
SECONDS_FLOOD=15
ip -n "$NS_CLIENT" addr add "$OTHER/24" dev "$LAB_IF_CLIENT" || lab_bail "cannot add $OTHER"
FLOOD=$((RATE * SECONDS_FLOOD))
for ((i = 0; i < FLOOD; i++)); do
	echo "h$RANDOM$i.void.test A"
done >"$LAB_DIR/flood.txt"

# upstream_list KEY: one of the upstream's request list figures (current.all, max, exceeded)
upstream_list()
{
	lab_upstream_stat "total.requestlist.$1"
}

lab_start_dotgw --upstream "$LAB_UP4#$LAB_AUTH_NAME" --ca-file "$LAB_CA" --scope gateway \
	--interface "$LAB_GW_IF_CLIENT" --mode tproxy --workers "$WORKERS" --cache-size 0 \
	--timeout 3000 --max-inflight-per-client "$SHARE" --log-level info || lab_finish

lab_bg "$NS_CLIENT" "$LAB_DIR/dnsperf.out" dnsperf -s "$LAB_DECOY4" -a 198.51.100.2 \
	-d "$LAB_DIR/flood.txt" -n 1 -Q "$RATE" -q "$FLOOD" -l $((SECONDS_FLOOD + 10)) -t 4
flood=$LAB_BG_PID

# While the flood runs (its names time out five times over), the other client asks once a
# second, over UDP and TCP in turn; the upstream's request list is read each time.
ok=0 asked=0 most=0
start=$(date +%s)
while lab_pid_alive "$flood" && (($(date +%s) - start < SECONDS_FLOOD + 5)); do
	proto=() want=UDP
	((asked % 2)) && proto=(+tcp) want=TCP
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" -b "$OTHER" www.example.test A +tries=1 +time=2 \
		"${proto[@]}"
	asked=$((asked + 1))
	if [ "$(lab_dig_summary A)" = "NOERROR $LAB_UP_A from $LAB_DECOY4#53 ($want)" ]; then
		ok=$((ok + 1))
	else
		lab_log "query $asked ($want) during the flood: $(lab_dig_summary A)"
	fi
	now=$(upstream_list current.all)
	((now > most)) && most=$now
	sleep 0.5
done
lab_check_num "the other client asked during the whole flood ($asked queries)" "$asked" -ge 10
lab_check_eq "the other client got every answer during the flood (UDP and TCP)" "$asked" "$ok"
# Each worker's share of the flooder's queries, and a few of the other client's; without the
# hold the list grew by a share at each 3 s deadline, to over 1,000 within 10 s.
bound=$((WORKERS * SHARE + 16))
lab_check_num "the upstream's request list stayed within the flooder's shares (most $most, bound $bound)" \
	"$most" -le "$bound"
lab_check_num "the upstream's own figure agrees (requestlist.max $(upstream_list max))" \
	"$(upstream_list max)" -le "$bound"
lab_check_eq "the upstream never overflowed its request list (requestlist.exceeded)" 0 \
	"$(upstream_list exceeded)"
abandoned=$(lab_dotgw_stat_now upstream_abandoned)
lab_check_num "timed-out queries were left with the upstream (upstream_abandoned=$abandoned)" \
	"${abandoned:-0}" -gt 0
lab_check_num "the flooder's queries past its share got SERVFAIL at once (client_overload)" \
	"$(lab_dotgw_stat_now client_overload)" -gt 0
lab_check_eq "no connection backed the upstream off (upstream_failures)" 0 \
	"$(lab_dotgw_stat_now upstream_failures)"

wait "$flood"
lost=$(sed -n 's/^ *Queries lost: *\([0-9]*\).*/\1/p' "$LAB_DIR/dnsperf.out")
lab_check_eq "the flooder got an answer to each of its queries (SERVFAIL)" 0 "${lost:-?}"
lab_stop_dotgw
lab_check_eq "dotgw exits 0 with queries still held" 0 "$?"
lab_check_eq "nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_finish
