#!/bin/bash
# inflight_share.test.sh - one client flooding random names under a zone that never answers
# holds at most its share of the queries in flight (--max-inflight-per-client); another client
# is still answered during the flood, over UDP and TCP, and the flooder's excess is SERVFAIL,
# counted as client_overload.
#
#   client 198.51.100.2 (dnsperf, flooding *.void.test) --.
#   client 198.51.100.3 (dig, a few queries)             -+- gw-c [gateway: dotgw] gw-u --- upstream
#                                                                  unbound: void.test is forwarded
#                                                                  to 203.0.113.250, a host that
#                                                                  does not exist (no answer ever)
#
# Usage: inflight_share.test.sh PATH-TO-DOTGW
# Environment: SHARE_ARGS (more dotgw options; default none: the default limits),
# SHARE_RATE (the flood's queries per second, default 1400, as in the issue).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf
lab_require_dotgw "${1:-}"

LAB_UP_EXTRA_CONF=$LAB_UP_VOID_CONF
lab_setup

OTHER=198.51.100.3
ip -n "$NS_CLIENT" addr add "$OTHER/24" dev "$LAB_IF_CLIENT" || lab_bail "cannot add $OTHER"
# 11200 names, 8 s at 1400 q/s: the flood is bounded in count (and by dnsperf -l in time)
FLOOD=11200
for ((i = 0; i < FLOOD; i++)); do
	echo "r$RANDOM$i.void.test A"
done >"$LAB_DIR/flood.txt"

lab_dig "$NS_UP" @"$LAB_UP4" +time=1 +tries=1 probe.void.test A
lab_check_eq "the upstream does not answer void.test" "" "$(lab_dig_status)"

# a configuration file, so that a reload can change the share in the middle of the flood
CONF="$LAB_DIR/dotgw.conf"
printf '%s\n' "upstream = $LAB_UP4#$LAB_AUTH_NAME" "ca-file = $LAB_CA" "scope = gateway" \
	"interface = $LAB_GW_IF_CLIENT" "cache-size = 0" "timeout = 3000" "log-level = info" >"$CONF"
read -r -a share_args <<<"${SHARE_ARGS:-}"
lab_start_dotgw --config "$CONF" --mode tproxy "${share_args[@]}" || lab_finish

# saturated: the flood fills what it may (its share, or the whole table)
saturated()
{
	[ "$(($(lab_dotgw_stat_now client_overload) + $(lab_dotgw_stat_now overload)))" -gt 0 ] \
		2>/dev/null
}

lab_bg "$NS_CLIENT" "$LAB_DIR/dnsperf.out" dnsperf -s "$LAB_DECOY4" -a 198.51.100.2 \
	-d "$LAB_DIR/flood.txt" -n 1 -Q "${SHARE_RATE:-1400}" -q "$FLOOD" -l 20 -t 4
flood=$LAB_BG_PID
LAB_WAIT_PID=$flood lab_wait_until 50 saturated
lab_check_eq "the flood filled what it may" 0 "$?"

ok=0
for ((i = 0; i < 10; i++)); do
	proto=() want=UDP
	((i % 2)) && proto=(+tcp) want=TCP
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" -b "$OTHER" www.example.test A +tries=1 +time=2 \
		"${proto[@]}"
	[ "$(lab_dig_summary A)" = "NOERROR $LAB_UP_A from $LAB_DECOY4#53 ($want)" ] &&
		ok=$((ok + 1))
done
lab_check_eq "the other client got all 10 answers (UDP and TCP) during the flood" 10 "$ok"
lab_ok "the flood was still running then" lab_pid_alive "$flood"
overload=$(lab_dotgw_stat_now client_overload)
lab_check_num "the flooder's excess was counted (client_overload=$overload)" "${overload:-0}" -gt 0
lab_check_eq "the table itself never filled (overload)" 0 "$(lab_dotgw_stat_now overload)"
lab_check_num "the flooder's queries past its share waited first" \
	"$(lab_dotgw_stat_now client_waited)" -gt 0

lab_log "a reload in the middle of the flood moves every query to a new table (share 16)"
echo "max-inflight-per-client = 16" >>"$CONF"
kill -HUP "$DOTGW_PID"
lab_wait_until 50 grep -q 'reloaded' "$DOTGW_LOG"
lab_ok "the reload is logged" grep -q 'reloaded' "$DOTGW_LOG"
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" -b "$OTHER" www.example.test A +tries=1 +time=2
lab_check_eq "the other client is answered after it" "NOERROR $LAB_UP_A" \
	"$(lab_dig_status) $(lab_dig_rdata A)"
lab_ok "the flood was still running after the reload" lab_pid_alive "$flood"

wait "$flood"
flood_out=$(cat "$LAB_DIR/dnsperf.out")
lost=$(printf '%s\n' "$flood_out" | sed -n 's/^ *Queries lost: *\([0-9]*\).*/\1/p')
sent=$(printf '%s\n' "$flood_out" | sed -n 's/^ *Queries sent: *\([0-9]*\).*/\1/p')
lab_check_eq "the flooder sent its $FLOOD queries and got an answer to each (SERVFAIL)" \
	"$FLOOD 0" "${sent:-?} ${lost:-?}"
lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"
lab_check_eq "nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_finish
