#!/bin/bash
# unreachable.test.sh - --unreachable, the captive-portal choice, with the upstream's TCP 853
# dropped on the path (an nft rule in the upstream's namespace), as before a portal's login:
#  - by default (servfail) every query gets SERVFAIL, however long it lasts, and the decoy (the
#    address the client asked) sees nothing;
#  - with --unreachable plaintext --unreachable-after 3, the first queries get SERVFAIL, then
#    the decoy answers them (UDP and TCP, IPv4 and IPv6), with a warning and metrics; when 853
#    is let through again, the next answer is the upstream's, the decoy's count stops growing,
#    and the end is logged.
# Both capture modes (nfqueue, tproxy) in gateway scope, and tproxy in host scope (the
# gateway's own queries: the roaming laptop this option is for).
#
#   client --- gw-c [gateway: dotgw --scope gateway|host] gw-u --- upstream 203.0.113.2
#                                                              (DoT @853: dropped, then not)
#                                                         gw-d --- decoy 192.0.2.53 (plain @53)
#
# Usage: unreachable.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"
lab_setup

# block_853 / unblock_853: the path drops (no reset, no ICMP) the upstream's DoT port.
block_853()
{
	ip netns exec "$NS_UP" nft -f - <<-EOF
		table inet block853 {
			chain input {
				type filter hook input priority -10;
				tcp dport 853 drop
			}
		}
	EOF
}

unblock_853()
{
	ip netns exec "$NS_UP" nft delete table inet block853
}

# ask DESC EXPECTED SERVER DIG-ARGS...: from the client (ASK_NS: the client's namespace, or
# the gateway's in host scope), one A query for www.example.test.
ASK_NS=$NS_CLIENT
ask()
{
	local desc=$1 want=$2 server=$3
	shift 3
	lab_dig "$ASK_NS" @"$server" www.example.test A +time=4 +tries=1 "$@"
	lab_check_eq "$desc" "$want" "$(lab_dig_summary A)"
}

# answer_is A: the last query got A from the decoy (the client asked it).
answer_is()
{
	lab_dig "$ASK_NS" @"$LAB_DECOY4" www.example.test A +time=4 +tries=1
	[ "$(lab_dig_rdata A)" = "$1" ]
}

# wait_answer A SECONDS: ask (UDP, IPv4) every 0.2 s until the answer is A, for SECONDS at most.
wait_answer()
{
	local end=$((SECONDS + $2))
	while [ "$SECONDS" -lt "$end" ]; do
		answer_is "$1" && return 0
		lab_sleep 0.2
	done
	return 1
}

scrape()
{
	ip netns exec "$NS_GW" timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9853 &&
		printf "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3 && cat <&3'
}

metric()
{
	scrape | sed -n "s/^$1 //p"
}

ARGS=("${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" --cache-size 0
	--metrics 127.0.0.1:9853)
HOST_ARGS=("${LAB_DOTGW_ARGS[@]}" --scope host --cache-size 0 --metrics 127.0.0.1:9853)
block_853 || lab_bail "lab: dropping 853 on the upstream's side"

# --- the default: encrypted or nothing ------------------------------------------------------
lab_log "default (--unreachable servfail), 853 dropped"
lab_start_dotgw "${ARGS[@]}" --mode tproxy --unreachable-after 1 || lab_finish
ask "default: UDP: SERVFAIL" "SERVFAIL  from $LAB_DECOY4#53 (UDP)" "$LAB_DECOY4"
ask "default: TCP, later than --unreachable-after: SERVFAIL" \
	"SERVFAIL  from $LAB_DECOY4#53 (TCP)" "$LAB_DECOY4" +tcp
lab_sleep 1
ask "default: IPv6, later still: SERVFAIL" "SERVFAIL  from $LAB_DECOY6#53 (UDP)" "$LAB_DECOY6"
ask "default: UDP again: SERVFAIL" "SERVFAIL  from $LAB_DECOY4#53 (UDP)" "$LAB_DECOY4"
lab_check_eq "default: the decoy saw nothing" 0 "$(lab_decoy_count)"
lab_check_eq "default: metrics: not in plaintext" 0 "$(metric dotgw_unreachable_plaintext)"
lab_check_eq "default: metrics: no episode" 0 "$(metric dotgw_unreachable_episodes_total)"
lab_notok "default: nothing logged about plaintext" grep -q UNENCRYPTED "$DOTGW_LOG"
lab_stop_dotgw
lab_check_eq "default: dotgw exits 0" 0 "$?"

# --- plaintext while unreachable, encrypted again when not ---------------------------------
for run in nfqueue tproxy tproxy-host; do
	mode=${run%-host}
	if [ "$run" = tproxy-host ]; then
		ASK_NS=$NS_GW
		RUN_ARGS=("${HOST_ARGS[@]}")
	else
		ASK_NS=$NS_CLIENT
		RUN_ARGS=("${ARGS[@]}")
	fi
	mode_name=$mode
	mode=$run # in the check names
	lab_log "$mode: --unreachable plaintext --unreachable-after 3, 853 dropped"
	block_853 2>/dev/null
	lab_decoy_reset
	lab_start_dotgw "${RUN_ARGS[@]}" --mode "$mode_name" --unreachable plaintext \
		--unreachable-after 3 || lab_finish
	lab_ok "$mode: the start-up log warns of the option" \
		grep -q "warn: --unreachable plaintext: once queries have failed" "$DOTGW_LOG"
	# a fresh start is not "unreachable": the first query is tried upstream
	ask "$mode: the first query: SERVFAIL" "SERVFAIL  from $LAB_DECOY4#53 (UDP)" "$LAB_DECOY4"
	# it fails too (at once in the 0.5 s back-off, else at the 2 s connect limit), before the
	# 3 s are up
	ask "$mode: one more right after it: SERVFAIL" "SERVFAIL  from $LAB_DECOY4#53 (TCP)" \
		"$LAB_DECOY4" +tcp
	lab_check_eq "$mode: the decoy saw nothing yet" 0 "$(lab_decoy_count)"
	lab_check_eq "$mode: metrics: not in plaintext yet" 0 \
		"$(metric dotgw_unreachable_plaintext)"
	# SERVFAIL until 3 s after that first failure, then the decoy's answer
	if ! wait_answer "$LAB_DECOY_A" 15; then
		lab_fail "$mode: the decoy answers within 15 s"
	fi
	lab_check_eq "$mode: plaintext: UDP: the decoy's answer" \
		"NOERROR $LAB_DECOY_A from $LAB_DECOY4#53 (UDP)" "$(lab_dig_summary A)"
	ask "$mode: plaintext: TCP: the decoy's answer" \
		"NOERROR $LAB_DECOY_A from $LAB_DECOY4#53 (TCP)" "$LAB_DECOY4" +tcp
	ask "$mode: plaintext: IPv6 UDP: the decoy's answer" \
		"NOERROR $LAB_DECOY_A from $LAB_DECOY6#53 (UDP)" "$LAB_DECOY6"
	ask "$mode: plaintext: IPv6 TCP: the decoy's answer" \
		"NOERROR $LAB_DECOY_A from $LAB_DECOY6#53 (TCP)" "$LAB_DECOY6" +tcp
	lab_check_num "$mode: plaintext: the decoy saw the queries" "$(lab_decoy_count)" -ge 4
	lab_ok "$mode: plaintext: the start is logged as a warning" \
		grep -Eq "warn.*unreachable: no upstream has answered.*UNENCRYPTED" "$DOTGW_LOG"
	lab_check_eq "$mode: metrics: in plaintext" 1 "$(metric dotgw_unreachable_plaintext)"
	lab_check_num "$mode: metrics: queries passed" \
		"$(metric dotgw_unreachable_plaintext_queries_total)" -ge 4
	lab_check_eq "$mode: metrics: one episode" 1 "$(metric dotgw_unreachable_episodes_total)"

	lab_log "$mode: 853 let through again"
	unblock_853 || lab_fail "lab: letting 853 through"
	lab_upstream_reset
	# the probes go on through the pool's back-off (at most 30 s between attempts)
	if ! wait_answer "$LAB_UP_A" 45; then
		lab_fail "$mode: the upstream answers again within 45 s"
	fi
	lab_check_eq "$mode: encrypted again: UDP: the upstream's answer" \
		"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" "$(lab_dig_summary A)"
	seen=$(lab_decoy_count)
	ask "$mode: encrypted again: TCP: the upstream's answer" \
		"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (TCP)" "$LAB_DECOY4" +tcp
	ask "$mode: encrypted again: IPv6: the upstream's answer" \
		"NOERROR $LAB_UP_A from $LAB_DECOY6#53 (UDP)" "$LAB_DECOY6"
	ask "$mode: encrypted again: IPv6 TCP: the upstream's answer" \
		"NOERROR $LAB_UP_A from $LAB_DECOY6#53 (TCP)" "$LAB_DECOY6" +tcp
	lab_check_eq "$mode: encrypted again: the decoy's count stopped growing" "$seen" \
		"$(lab_decoy_count)"
	lab_check_num "$mode: encrypted again: the upstream saw the queries" \
		"$(lab_upstream_queries)" -ge 4
	lab_ok "$mode: encrypted again: the end is logged as a warning, with the upstream" \
		grep -Eq "warn.*unreachable: upstream $LAB_UP4.* answered: queries are encrypted again" \
		"$DOTGW_LOG"
	lab_check_eq "$mode: metrics: not in plaintext" 0 "$(metric dotgw_unreachable_plaintext)"
	lab_check_eq "$mode: metrics: still one episode" 1 \
		"$(metric dotgw_unreachable_episodes_total)"
	lab_stop_dotgw
	lab_check_eq "$mode: dotgw exits 0" 0 "$?"
done

lab_finish
