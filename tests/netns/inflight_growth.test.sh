#!/bin/bash
# inflight_growth.test.sh - a client's share of the queries in flight grows while its answers
# come back (--max-inflight-per-client not given), so one busy client is not held at the
# default share when the upstream is far away; given explicitly, the share stays fixed.
#
#   client 198.51.100.2 (dnsperf, 250 outstanding, unique names)
#     --- gw-c [gateway: dotgw] gw-u ===(100 ms round trip on TCP :853)=== upstream unbound
#
# The WAN is bench/wan.sh's netdelay (NFQUEUE inside the lab's gateway and upstream
# namespaces). With 250 queries outstanding and the default share of 128, every query past the
# 128th waits for an earlier one to end (client_waited); a share that grows with the answers
# leaves only the first round trip's queries waiting. Counts, not times, are checked.
#
# Usage: inflight_growth.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf cc iptables-nft
lab_require_dotgw "${1:-}"
# shellcheck source=../../bench/wan.sh
. "$(dirname "$0")/../../bench/wan.sh"

N=3000
# every name under grow.test answers (a redirect zone: one A record for all of them)
LAB_UP_EXTRA_CONF="server:
	local-zone: \"grow.test.\" redirect
	local-data: \"grow.test. 300 IN A 192.0.2.80\""
lab_setup
for ((i = 0; i < N; i++)); do
	echo "g$i.grow.test A"
done >"$LAB_DIR/names.txt"

WAN_RTT_MS=100 WAN_TOOL=netdelay
wan_start || lab_bail "starting the WAN (netdelay)"

# run LABEL DOTGW-ARGS...: N unique names at 250 outstanding; sets WAITED, ANSWERED, SERVFAIL
run()
{
	local label=$1 out
	shift
	lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --mode tproxy --scope gateway \
		--interface "$LAB_GW_IF_CLIENT" --cache-size 0 --timeout 5000 "$@" ||
		lab_bail "$label: dotgw did not start"
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" +tries=1 +time=3 warm.grow.test A # connections up
	out=$(lab_in "$NS_CLIENT" dnsperf -s "$LAB_DECOY4" -d "$LAB_DIR/names.txt" -n 1 -q 250 \
		-t 5 -l 60 2>&1)
	WAITED=$(lab_dotgw_stat_now client_waited)
	ANSWERED=$(printf '%s\n' "$out" | grep -o 'NOERROR [0-9]*' | head -n 1 | cut -d' ' -f2)
	SERVFAIL=$(printf '%s\n' "$out" | grep -o 'SERVFAIL [0-9]*' | head -n 1 | cut -d' ' -f2)
	lab_log "$label: $(printf '%s\n' "$out" | grep -E 'Queries (completed|lost)|Run time' |
		xargs); waited=$WAITED"
	lab_stop_dotgw
	lab_check_eq "$label: all $N answered, none SERVFAIL" "$N 0" "${ANSWERED:-?} ${SERVFAIL:-0}"
}

run "fixed share (--max-inflight-per-client 128)" --max-inflight-per-client 128
fixed=$WAITED
lab_check_num "fixed share: the queries past 128 waited (client_waited=$fixed)" \
	"${fixed:-0}" -gt $((N / 4))

run "default (growing) share"
grown=$WAITED
lab_check_num "growing share: only the first round trip's queries waited (client_waited=$grown)" \
	"${grown:-$N}" -lt $((N / 10))

wan_stop
lab_finish
