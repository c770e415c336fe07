#!/bin/bash
# standby.test.sh - --standby: when the upstream closes an idle connection and queries came
# recently, dotgw opens a fresh one at once, so that a query after a quiet gap finds a
# connection that was ready before it arrived; and it stops once no query came for the window.
#
#   client --- gw-c [gateway: dotgw --standby 6 --metrics 127.0.0.1:9853] gw-u --- upstream
#                                                   unbound DoT, tcp-idle-timeout: 2000
#
# No timing is judged: handshakes and standby openings are dotgw's /metrics counters, the
# connections are the gateway's sockets (ss), waits are bounded polls.
#
# Usage: standby.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" ss
lab_require_dotgw "${1:-}"
# The upstream closes connections idle for 2 s (Quad9 does about that).
# shellcheck disable=SC2034 # read by lab_start_upstream
LAB_UP_EXTRA_CONF=$'\ttcp-idle-timeout: 2000'
lab_setup

WINDOW=6

scrape()
{
	ip netns exec "$NS_GW" timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9853 &&
		printf "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3 && cat <&3' |
		sed '1,/^\r$/d' >"$LAB_DIR/scrape.txt"
}

# value NAME-WITH-LABELS: one sample's value, from a fresh scrape
value()
{
	scrape
	awk -v k="$1" '$1 == k { print $2 }' "$LAB_DIR/scrape.txt"
}

handshakes()
{
	value "dotgw_upstream_handshakes_total{upstream=\"$LAB_UP4@853#$LAB_AUTH_NAME\"}"
}

standbys()
{
	value dotgw_upstream_standby_total
}

# open_conns: dotgw's established connections to the upstream's DoT port
open_conns()
{
	ip netns exec "$NS_GW" ss -Htn state established "( dport = :853 )" | wc -l
}

# standby_ready N: at least N standby openings and N + 1 handshakes (the first connection and
# the standby ones), and one connection open
# shellcheck disable=SC2317 # called through lab_wait_until
standby_ready()
{
	local s h
	s=$(standbys)
	h=$(handshakes)
	[ "${s:-0}" -ge "$1" ] && [ "${h:-0}" -ge $(($1 + 1)) ] && [ "$(open_conns)" = 1 ]
}

# shellcheck disable=SC2317 # called through lab_wait_until
no_conns()
{
	[ "$(open_conns)" = 0 ]
}

ask()
{
	lab_dig "$NS_CLIENT" @"$LAB_UP4" "$1" A
	lab_check_eq "$2" "NOERROR 203.0.113.99 from $LAB_UP4#53 (UDP)" "$(lab_dig_summary A)"
}

# --- 1. a query after a quiet gap goes over the standby connection
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" \
	--metrics 127.0.0.1:9853 --standby "$WINDOW" || lab_finish
ask q1.bench.test "a first query is answered (it opens the connection)"
lab_check_eq "one handshake so far" 1 "$(handshakes)"
# The upstream closes the idle connection after 2 s; a standby one replaces it at once.
lab_ok "after the upstream closed the idle connection, a standby one opened and completed its handshake" \
	lab_wait_until 100 standby_ready 1
h0=$(handshakes)
s0=$(standbys)
q0=$(lab_upstream_queries)
ask q2.bench.test "the query after the quiet gap is answered"
lab_check_eq "it went over the standby connection: no handshake for it (handshakes stay $h0)" \
	"$h0" "$(handshakes)"
lab_check_num "the upstream answered it (not a cache)" "$(lab_upstream_queries)" -gt "$q0"
lab_check_match "the debug log names the standby connection" \
	'standby connection for the next query' "$(cat "$DOTGW_LOG")"

# --- 2. standby stops after the window: once the last standby connection closed, nothing
# reconnects over a quiet period of several idle timeouts
lab_ok "within the window the standby connections end (none open)" \
	lab_wait_until $((WINDOW * 10 + 60)) no_conns
h1=$(handshakes)
s1=$(standbys)
lab_log "after the last query: $((s1 - s0)) standby connections, $((h1 - h0)) handshakes"
# At most one per idle timeout (2 s) of the window, and one of slack.
lab_check_num "standby connections after the last query are bounded ($((s1 - s0)))" \
	$((s1 - s0)) -le $((WINDOW / 2 + 1))
lab_sleep 5
lab_check_eq "no connection over a quiet period after the window (handshakes stay $h1)" \
	"$h1" "$(handshakes)"
lab_check_eq "no standby connection after the window" "$s1" "$(standbys)"
lab_check_eq "no connection open" 0 "$(open_conns)"
lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"

# --- 3. --standby 0: the idle close is final
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" \
	--metrics 127.0.0.1:9853 --standby 0 || lab_finish
ask q3.bench.test "--standby 0: a query is answered"
lab_ok "--standby 0: the upstream closes the idle connection" lab_wait_until 100 no_conns
lab_sleep 3
lab_check_eq "--standby 0: no standby connection" 0 "$(standbys)"
lab_check_eq "--standby 0: one handshake only" 1 "$(handshakes)"
lab_check_eq "--standby 0: no connection open" 0 "$(open_conns)"
lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"
lab_finish
