#!/bin/bash
# forward_reload.test.sh - SIGHUP swaps the forwarding table while queries flow: corp.example
# goes unencrypted to the internal resolver, then (after the reload) over DoT to the upstream;
# no query is lost or answered with an error across the reload, and the routing changes. In
# both capture modes; dnsperf's load is bounded in count and time.
#
#   client (dnsperf) --- gw-c [gateway: dotgw --config F] gw-u --- upstream 203.0.113.2 (DoT;
#                                                       |          www.corp.example 203.0.113.81)
#                                                       gw-i --- internal 10.8.0.1 (plain;
#                                                                www.corp.example 10.8.0.80)
#
# Usage: forward_reload.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=internal.sh
. "$(dirname "$0")/internal.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf
lab_require_dotgw "${1:-}"
UP_CORP_A=203.0.113.81
LAB_UP_EXTRA_CONF="local-zone: \"corp.example.\" static
local-data: \"www.corp.example. A $UP_CORP_A\""
lab_setup
lab_start_internal || lab_bail "lab: starting the internal resolver"

for ((i = 0; i < 2000; i++)); do
	echo "www.corp.example A"
done >"$LAB_DIR/queries.txt"

CONF="$LAB_DIR/dotgw.conf"
# write_conf FORWARD-TARGET
write_conf()
{
	printf 'upstream = %s\nscope = gateway\ninterface = %s\nca-file = %s\ncache-size = 0\nforward = corp.example=%s\n' \
		"$LAB_UP4#$LAB_AUTH_NAME" "$LAB_GW_IF_CLIENT" "$LAB_CA" "$1" >"$CONF"
}

count()
{
	grep -ciF " www.corp.example. " "$1"
}

for mode in tproxy nfqueue; do
	lab_log "$mode: reload under load moves corp.example from plain:$LAB_INT4 to DoT"
	write_conf "plain:$LAB_INT4"
	lab_start_dotgw --config "$CONF" --mode "$mode" --queues 2 || lab_finish
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.corp.example A +short
	lab_check_eq "$mode: before the reload, the internal server's answer" "$LAB_INT_A" "$LAB_OUT"
	int_before=$(count "$LAB_DIR/internal.log")
	up_before=$(count "$LAB_DIR/upstream.log")
	# about 6.7 s at 300 q/s, bounded in count and time
	lab_bg "$NS_CLIENT" "$LAB_DIR/dnsperf.out" dnsperf -s "$LAB_DECOY4" \
		-d "$LAB_DIR/queries.txt" -n 1 -Q 300 -l 20 -t 3
	load=$LAB_BG_PID
	lab_sleep 2
	write_conf 1
	kill -HUP "$DOTGW_PID"
	lab_wait_until 50 grep -q 'reloaded' "$DOTGW_LOG"
	lab_ok "$mode: the reload logs the new table" \
		grep -q "forward corp.example.: to $LAB_UP4" "$DOTGW_LOG"
	int_at=$(count "$LAB_DIR/internal.log")
	wait "$load"
	lab_bg_forget "$load"
	out=$(cat "$LAB_DIR/dnsperf.out")
	sent=$(sed -n 's/^ *Queries sent: *\([0-9]*\).*/\1/p' <<<"$out")
	lost=$(sed -n 's/^ *Queries lost: *\([0-9]*\).*/\1/p' <<<"$out")
	noerror=$(sed -n 's/.*NOERROR \([0-9]*\).*/\1/p' <<<"$out" | head -n 1)
	int_n=$((int_at - int_before))
	up_n=$(($(count "$LAB_DIR/upstream.log") - up_before))
	lab_log "$mode: sent=$sent lost=$lost noerror=$noerror; internal before the reload $int_n, upstream after it $up_n"
	lab_check_eq "$mode: dnsperf sent every query" 2000 "$sent"
	lab_check_eq "$mode: no query lost across the reload" 0 "$lost"
	lab_check_eq "$mode: every query answered NOERROR" "$sent" "$noerror"
	lab_check_num "$mode: the internal server took queries before the reload" "$int_n" -gt 0
	lab_check_num "$mode: the DoT upstream took them after it" "$up_n" -gt 0
	lab_check_num "$mode: together they took every one" "$((int_n + up_n))" -ge 2000
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.corp.example A +short
	lab_check_eq "$mode: after the reload, the DoT upstream's answer" "$UP_CORP_A" "$LAB_OUT"
	lab_stop_dotgw
	lab_check_eq "$mode: dotgw exits 0" 0 "$?"
done
lab_finish
