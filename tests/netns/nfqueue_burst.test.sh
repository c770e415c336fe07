#!/bin/bash
# nfqueue_burst.test.sh - a burst of several thousand UDP queries (dnsperf, bounded in count
# and time) through dotgw in NFQUEUE mode with two queues and two worker threads: every query is
# answered, none lost, none reaches the decoy. Measures nothing: figures belong in bench/.
#
#   client (dnsperf) --- gw-c [gateway: dotgw --mode nfqueue --queues 2] gw-u --- upstream
#                                                                        gw-d --- decoy
#
# Usage: nfqueue_burst.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf
lab_require_dotgw "${1:-}"
lab_setup

QUERIES=5000
for ((i = 0; i < QUERIES; i++)); do
	echo "q$i.bench.test A"
done >"$LAB_DIR/queries.txt"

lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --log-level info --mode nfqueue --queues 2 \
	--scope gateway --interface "$LAB_GW_IF_CLIENT" || lab_finish
# -n 1: each name once; -q 200 outstanding at most; -l 60: a time bound, never reached
lab_run "$NS_CLIENT" dnsperf -s "$LAB_DECOY4" -d "$LAB_DIR/queries.txt" -n 1 -q 200 -l 60 -t 5
lab_check_eq "dnsperf ran" 0 "$LAB_RC"
sent=$(printf '%s\n' "$LAB_OUT" | sed -n 's/^ *Queries sent: *\([0-9]*\).*/\1/p')
completed=$(printf '%s\n' "$LAB_OUT" | sed -n 's/^ *Queries completed: *\([0-9]*\).*/\1/p')
lost=$(printf '%s\n' "$LAB_OUT" | sed -n 's/^ *Queries lost: *\([0-9]*\).*/\1/p')
noerror=$(printf '%s\n' "$LAB_OUT" | sed -n 's/^ *Response codes: *NOERROR \([0-9]*\).*/\1/p')
lab_check_eq "dnsperf sent every query" "$QUERIES" "$sent"
lab_check_eq "every query was answered" "$QUERIES" "$completed"
lab_check_eq "no query was lost" 0 "$lost"
lab_check_eq "every answer is NOERROR (from the upstream's bench.test zone)" "$QUERIES" "$noerror"
lab_check_eq "nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_stop_dotgw
lab_check_eq "dotgw exits 0 on SIGTERM" 0 "$?"
lab_check_eq "dotgw read every query from the queues" "$QUERIES" "$(lab_dotgw_stat queue_packets)"
lab_check_eq "dotgw answered every query from the upstream" "$QUERIES" "$(lab_dotgw_stat answered)"
lab_log "queue ENOBUFS during the burst: $(lab_dotgw_stat queue_enobufs)"
lab_finish
