#!/bin/bash
# slow_misses.test.sh - slow misses at a recursive upstream that can take them are not held at
# --conn-inflight per connection when fast answers share the connection: dotgw keeps more than
# 128 of them open on its one connection, every one is answered, and the light stream too.
#
#   client 198.51.100.2 (dnsperf: 600 slow misses outstanding, new names under slow.test)
#          198.51.100.3 (dnsperf: 50 q/s of names the upstream answers at once, bench.test)
#     --- gw-c [gateway: dotgw --pool-size 1 --conn-inflight 128] gw-u --- upstream unbound
#     (one thread, 4096 requests at most) --- auth unbound (slow.test; netdelay: 100 ms per
#     query in)
#
# The lab and the slow auth server are bench/slow_upstream.sh's (bench/wan.sh's
# wan_slow_auth_start). With the window at its floor, as long as the least RTT is the fast
# answers', the upstream never holds more than 128 of the misses at once (its request list at
# most; bench/RESULTS.md, 2026-12-05 03:06: 127); a window that grows while the answers per
# second rise with it lets hundreds be open. (One fast answer is enough to hold it: the least
# RTT is kept 10 s, and the warm-up name is one. With a slow name as the warm-up and no light
# stream, the window grew on the code of 95b1454 and the request list reached 599.) Counts, not
# times, are checked: the upstream's most requests open at once (unbound-control stats), the
# answers (dnsperf's, and dotgw's queries and answered), dotgw's TLS handshakes. A slow miss
# dnsperf counts lost must be one its socket dropped (RcvbufErrors: the answers come back in
# bursts of hundreds; its -b buffer, capped by net.core.rmem_max, is meant to hold them).
#
# Usage: slow_misses.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf cc pkg-config
lab_require_dotgw "${1:-}"
# shellcheck source=../../bench/wan.sh
. "$(dirname "$0")/../../bench/wan.sh"

DELAY=100     # ms at the auth server, per slow miss
LOAD=600      # slow misses outstanding
SECS=4        # seconds of slow load (dnsperf -l)
N=12000       # slow names at most (dnsperf -n 1: each once)
RATE=50       # the light stream's q/s, from 1 s before the load to 1 s after
WANT_OPEN=300 # the upstream's request list must reach this (above 128)
BUF_KB=1024   # the slow client's socket buffers (dnsperf -b): its answers come in bursts
LIGHT4=198.51.100.3

LAB_UP_EXTRA_CONF=$WAN_SLOW_UP_CONF
lab_setup
ip -n "$NS_CLIENT" addr add "$LIGHT4/24" dev "$LAB_IF_CLIENT" || lab_bail "adding $LIGHT4"
wan_slow_auth_start "$DELAY" || lab_bail "the slow auth server (bench/wan.sh)"
lab_log "a slow miss through the upstream alone took $WAN_SLOW_FIRST_MS ms (delay $DELAY ms)"

awk -v n=$N 'BEGIN { for (i = 0; i < n; i++) printf "s%d.slow.test A\n", i }' \
	>"$LAB_DIR/slow.names"
awk -v n=$((RATE * (SECS + 2))) 'BEGIN { for (i = 0; i < n; i++) printf "l%d.bench.test A\n", i }' \
	>"$LAB_DIR/light.names"

lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --log-level info --scope gateway --workers 1 \
	--interface "$LAB_GW_IF_CLIENT" --cache-size 0 --pool-size 1 --conn-inflight 128 \
	--max-inflight-per-client 4096 --timeout 5000 || lab_bail "dotgw did not start"
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" +tries=1 +time=3 warm.bench.test A # the connection up
lab_check_eq "the connection is up (a bench.test name answered)" NOERROR "$(lab_dig_status)"
lab_upstream_reset

drops=$(lab_rcvbuf_drops "$NS_CLIENT")
lab_bg "$NS_CLIENT" "$LAB_DIR/light.out" dnsperf -s "$LAB_DECOY4" -a "$LIGHT4" \
	-d "$LAB_DIR/light.names" -n 1 -Q "$RATE" -q 100 -t 5 -l $((SECS + 2))
light=$LAB_BG_PID
lab_sleep 1
lab_run "$NS_CLIENT" dnsperf -s "$LAB_DECOY4" -a "$LAB_CLIENT4" -d "$LAB_DIR/slow.names" -n 1 \
	-q "$LOAD" -t 5 -l "$SECS" -b "$BUF_KB"
printf '%s\n' "$LAB_OUT" >"$LAB_DIR/slow.out"
wait "$light"
lab_bg_forget "$light"
drops=$(($(lab_rcvbuf_drops "$NS_CLIENT") - drops))
most=$(lab_upstream_stat total.requestlist.max)
handshakes=$(lab_dotgw_stat_now upstream_handshakes)
got=$(lab_dotgw_stat queries)
answered=$(lab_dotgw_stat answered)
servfail=$(lab_dotgw_stat servfail)
read -r s_sent s_done s_lost s_ok s_fail <<<"$(lab_dnsperf_counts "$LAB_DIR/slow.out")"
read -r l_sent l_done l_lost l_ok l_fail <<<"$(lab_dnsperf_counts "$LAB_DIR/light.out")"
lab_log "slow misses: sent $s_sent, completed $s_done, lost $s_lost, NOERROR $s_ok," \
	"SERVFAIL $s_fail; light: sent $l_sent, completed $l_done, lost $l_lost, NOERROR $l_ok," \
	"SERVFAIL $l_fail; the client's receive-buffer drops $drops; dotgw: queries $got," \
	"answered $answered, SERVFAIL $servfail, handshakes $handshakes; the upstream's request" \
	"list at most $most"

lab_check_num "the upstream held $WANT_OPEN slow misses or more at once (total.requestlist.max=$most)" \
	"${most:-0}" -ge "$WANT_OPEN"
lab_check_num "slow misses were sent" "$s_sent" -gt "$LOAD"
lab_check_eq "every slow miss that came back is NOERROR (completed, NOERROR; SERVFAIL)" \
	"$s_done $s_done 0" "$s_done $s_ok $s_fail"
# dnsperf's lost: answers that came in a burst larger than its socket's buffer (-b is capped by
# net.core.rmem_max), which dotgw did send (its own counts below)
lab_check_num "slow misses lost ($s_lost): no more than the client's receive-buffer drops" \
	"$s_lost" -le "$drops"
lab_check_eq "the light stream all answered NOERROR (sent, completed, NOERROR; SERVFAIL, lost)" \
	"$l_sent $l_sent $l_sent 0 0" "$l_sent $l_done $l_ok $l_fail $l_lost"
lab_check_num "the light stream was sent" "$l_sent" -ge $((RATE * SECS))
lab_check_eq "dotgw got every query and answered it, no SERVFAIL (queries, answered; servfail)" \
	"$((s_sent + l_sent + 1)) $((s_sent + l_sent + 1)) 0" "$got $answered $servfail"
lab_check_eq "dotgw opened one TLS connection (upstream_handshakes)" 1 "$handshakes"

lab_stop_dotgw
lab_check_eq "dotgw exits 0 on SIGTERM (a sanitizer's report would make it 1)" 0 "$?"
wan_stop
lab_log "netdelay: $WAN_COUNTERS"
lab_finish
