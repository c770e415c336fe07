#!/bin/bash
# upstream_stall_alive.test.sh - one connection to the upstream goes silent (its packets are
# dropped at the upstream, as a server that stops reading it or a lost flow) while the upstream
# answers on another: dotgw closes the silent one and sends its queries again, but does not
# back off the upstream, so no client gets a SERVFAIL for it. Only once every connection is
# silent does the upstream back off.
#
#   client (dig, dnsperf) --- gw-c [gateway: dotgw --pool-size 2] gw-u --- upstream unbound
#                                                                 void.test is forwarded to a
#                                                                 host that never answers
#
# Before: a stall on one connection marked the only upstream unusable for 500 ms (doubling),
# and every query of every client in that time was SERVFAIL at once ("Network is
# unreachable"): tests/netns/inflight_share.test.sh saw it with --pool-size 4 under load.
# No timing is judged: the stall is the gateway's own check (--stall-timeout, 1000 ms); the
# test waits for it in the log and looks at the counters and the answers around it.
#
# Usage: upstream_stall_alive.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" ss dnsperf
lab_require_dotgw "${1:-}"

# shellcheck disable=SC2034 # read by lab_start_upstream
LAB_UP_EXTRA_CONF=$LAB_UP_VOID_CONF
lab_setup

# conn_ports: the gateway's local ports of its established connections to the upstream's 853
conn_ports()
{
	ip netns exec "$NS_GW" ss -Htn state established "( dport = :853 )" |
		awk '{ n = split($3, a, ":"); print a[n] }' | sort -n
}

# shellcheck disable=SC2317 # called through lab_wait_until
two_conns()
{
	[ "$(conn_ports | wc -l)" -ge 2 ]
}

# shellcheck disable=SC2317 # called through lab_wait_until
stall_logged()
{
	grep -q 'no answer for .* queries in flight' "$DOTGW_LOG"
}

# shellcheck disable=SC2317 # called through lab_wait_until
backoff_logged()
{
	grep -q 'unusable (Connection timed out)' "$DOTGW_LOG"
}

# www: one query of the other client; prints its status (empty: no answer)
www()
{
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A +tries=1 +time=2
	lab_dig_status
}

# --timeout 10000: the void.test queries stay in flight through the test
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" \
	--cache-size 0 --pool-size 2 --workers 1 --timeout 10000 || lab_finish

lab_check_eq "a first query opens one connection" NOERROR "$(www)"
first=$(conn_ports)
lab_check_eq "one connection is open" 1 "$(printf '%s\n' "$first" | grep -c .)"

# 24 queries that the upstream never answers: more than 16 in flight on the first connection,
# so dotgw opens a second one, which then takes the other queries
for ((i = 0; i < 24; i++)); do
	echo "s$i.void.test A"
done >"$LAB_DIR/void.txt"
lab_bg "$NS_CLIENT" "$LAB_DIR/dnsperf.out" dnsperf -s "$LAB_DECOY4" -d "$LAB_DIR/void.txt" \
	-n 1 -q 24 -t 15 -l 20
void=$LAB_BG_PID
lab_wait_until 50 two_conns
lab_ok "a second connection opened" two_conns
lab_check_eq "the second connection answers" NOERROR "$(www)"

lab_log "the first connection ($first) goes silent: the upstream drops its packets"
ip netns exec "$NS_UP" nft -f - <<EOF || lab_bail "cannot add the drop rules"
table inet stall {
	chain in {
		type filter hook input priority 0; policy accept;
		tcp dport 853 tcp sport $first drop
	}
	chain out {
		type filter hook output priority 0; policy accept;
		tcp sport 853 tcp dport $first drop
	}
}
EOF

# the other client asks on until the stall was seen and 20 queries after it (200 at most)
asked=0 bad=0 after=0
while ((asked < 200 && after < 20)); do
	stall_logged && after=$((after + 1))
	s=$(www)
	asked=$((asked + 1))
	[ "$s" = NOERROR ] || {
		bad=$((bad + 1))
		lab_log "query $asked: '${s:-no answer}'"
	}
done
lab_ok "the silent connection was found stalled" stall_logged
lab_check_match "it was closed without backing off the upstream" 'not backing off' \
	"$(grep 'no answer for .* queries in flight' "$DOTGW_LOG")"
lab_check_eq "the other client got NOERROR for all $asked queries around the stall" 0 "$bad"
lab_check_num "the stall was counted" "$(lab_dotgw_stat_now upstream_stalled)" -ge 1
lab_check_eq "the upstream never backed off (upstream_failures)" 0 \
	"$(lab_dotgw_stat_now upstream_failures)"

lab_log "every connection goes silent: the upstream backs off"
if ! ip netns exec "$NS_UP" nft add rule inet stall in tcp dport 853 drop ||
	! ip netns exec "$NS_UP" nft add rule inet stall out tcp sport 853 drop; then
	lab_bail "cannot add the drop rules"
fi
www >/dev/null
lab_wait_until 100 backoff_logged
lab_ok "a stall with no answer anywhere backs off the upstream" backoff_logged
lab_check_num "upstream_failures counts it" "$(lab_dotgw_stat_now upstream_failures)" -ge 1

lab_bg_stop "$void" TERM >/dev/null
lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"
lab_check_eq "nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_finish
