#!/bin/bash
# bench/slow_upstream.sh - issue 17: dotgw in front of a recursive upstream whose misses are
# slow (DELAY ms at an authoritative server behind it). It measures:
#   (a) slow misses: throughput through dotgw against dnsperf's own DoT straight to the
#       upstream (-c 1 and -c 8 connections) and dnsperf UDP straight to it (with -r 0: slow
#       misses alone);
#   (b) a light stream of names the upstream answers at once (local data, like a cache hit),
#       RATE q/s from another client address, alongside LOAD slow misses outstanding: its
#       p50/p99, i.e. how long it waits behind the slow ones (head-of-line), and the slow
#       misses' throughput meanwhile;
#   (c) (b) again with each --pool-size and --conn-inflight asked for.
# It was written to check a cap of 32 x connections / miss latency: unbound once read at most
# 32 requests at a time from a TCP/TLS connection (TCP_MAX_REQ_SIMULTANEOUS). That limit was
# commented out in unbound 1.13.0 (its Changelog, 16 October 2020: "Fix that the out of order
# TCP processing does not limit the number of outstanding queries over a connection") and
# removed since; the lab's unbound (1.17.1 on Debian 12) has none, and the -c 1 row shows it
# (hundreds of requests open from one connection). What caps dotgw is its own window: with
# answers that come back at once beside the slow ones, the window stays at --conn-inflight.
# In the lab of tests/netns/lib.sh, plus a fourth namespace (the lab's, cleaned up with it):
#
#   client ---- gateway: dotgw ---- upstream: unbound DoT ---- auth: unbound, slow.test
#   .2 misses   --mode tproxy       forward-zone slow.test     203.0.113.200 (peer link from
#   .3 light    --cache-size 0      (cache: fresh names)       the upstream's 203.0.113.201);
#                                                              bench/netdelay.c holds each
#                                                              query (UDP :53 in) DELAY ms
# Names: every slow miss is a new name under slow.test (so the upstream's cache never has
# it); the light stream asks new names under bench.test, which the upstream answers from its
# local data at once. dotgw runs with --cache-size 0 and --max-inflight-per-client 4096 (-s; so
# that dotgw's per-client share does not cap the load: the question is the upstream's
# connections), --timeout 3000 as by default: queries that wait longer get SERVFAIL.
# The upstream: one thread, outgoing-range and num-queries-per-thread 4096 (the lab's 64
# would cap the misses below the DoT limit), no query log. Mid-run, the upstream's
# receive queues of its :853 connections (ss) show what it has not read yet (with no
# per-connection limit: what a busy unbound thread has not come to), and its request list
# (unbound-control stats: total.requestlist.current.all mid-run, .max over the run) how many
# requests it held at once.
# Slow q/s is the answers within the SECS s of sending, (completed - LOAD) / SECS: dnsperf's
# own figure also counts the last LOAD, answered after. dnsperf's average latency of its DoT
# rows is not a latency (a few ms for misses that take DELAY ms); Little's law gives it:
# LOAD / q/s.
#
# Usage: sudo bench/slow_upstream.sh [-d DELAY_MS] [-l SECONDS] [-L LOADS] [-r RATE]
#        [-p POOLS] [-w WINDOWS] [-s SHARE] [PATH-TO-DOTGW]
#   -d  the auth server's delay per query (default 100)
#   -l  seconds of each run (default 8)
#   -L  slow misses outstanding (dnsperf -q), space-separated (default "500 1000")
#   -r  the light stream's queries per second (default 200)
#   -p  dotgw --pool-size values (default "1 2 4 8")
#   -w  dotgw --conn-inflight values (default "128 32")
#   -s  dotgw --max-inflight-per-client, or "default" for dotgw's own (default 4096)
# About 30 s + (3 + pools x windows) x loads x (SECONDS + 4) s. Prints markdown tables.
# Exit 0 when it ran, 1 on a failure, 77 skipped.

set -u
SELF=$(readlink -f -- "${BASH_SOURCE[0]}")
BENCH_SELF_DIR=$(dirname -- "$SELF")
BENCH_REPO=$(cd -- "$BENCH_SELF_DIR/.." && pwd)
DELAY=100
SECS=8
LOADS="500 1000"
RATE=200
POOLS="1 2 4 8"
WINDOWS="128 32"
SHARE=4096
while getopts "d:l:L:r:p:w:s:h" opt; do
	case $opt in
	d) DELAY=$OPTARG ;;
	l) SECS=$OPTARG ;;
	L) LOADS=$OPTARG ;;
	r) RATE=$OPTARG ;;
	p) POOLS=$OPTARG ;;
	w) WINDOWS=$OPTARG ;;
	s) SHARE=$OPTARG ;;
	h) sed -n '2,/^$/s/^# \{0,1\}//p' "$SELF"; exit 0 ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
small='^[1-9][0-9]{0,3}$'
SHARE_ARGS=()
if [ "$SHARE" != default ]; then
	SHARE_ARGS=(--max-inflight-per-client "$SHARE")
	[[ "$SHARE" =~ $small ]] || { echo "$0: -s wants 1..9999 or default" >&2; exit 2; }
fi
for v in "$DELAY" "$SECS" "$((RATE + 1))" $LOADS $POOLS $WINDOWS; do
	[[ "$v" =~ $small ]] || { echo "$0: '$v' is not a number 1..9999" >&2; exit 2; }
done
LAB_PROC_TIMEOUT=1800

# shellcheck source-path=SCRIPTDIR source=../tests/netns/lib.sh
. "$BENCH_REPO/tests/netns/lib.sh"
# shellcheck source-path=SCRIPTDIR source=wan.sh
. "$BENCH_SELF_DIR/wan.sh"
# shellcheck source-path=SCRIPTDIR source=percentiles.sh
. "$BENCH_SELF_DIR/percentiles.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf pkg-config awk ss
lab_require_dotgw "${1:-$BENCH_REPO/build/dotgw}"

LIGHT4=198.51.100.3
LAB_UP_EXTRA_CONF=$WAN_SLOW_UP_CONF
lab_setup >/dev/null
ip -n "$NS_CLIENT" addr add "$LIGHT4/24" dev "$LAB_IF_CLIENT" || lab_bail "adding $LIGHT4"
# The auth namespace, its unbound and the delay (bench/wan.sh).
wan_slow_auth_start "$DELAY" || lab_bail "the slow auth server"
lab_log "a slow miss through the upstream took $WAN_SLOW_FIRST_MS ms (delay $DELAY ms)"

# The upstream counts the connections opened to its :853 (SYNs in): dnsperf's DoT client has
# been seen reconnecting (bench/README.md's caveats), dotgw's handshakes are its own figure.
ip netns exec "$NS_UP" nft -f - <<-EOF || lab_bail "the upstream's SYN counter"
	table inet slowsyn {
		chain in {
			type filter hook input priority 0; policy accept;
			tcp dport 853 tcp flags & (syn | ack) == syn counter
		}
	}
EOF
# syns: the SYNs to :853 the upstream has seen so far.
syns()
{
	ip netns exec "$NS_UP" nft list table inet slowsyn |
		awk '{ for (i = 1; i < NF; i++) if ($i == "packets") n += $(i + 1) } END { print n + 0 }'
}

RUN=0
# names FILE COUNT ZONE: COUNT names never asked before, under ZONE, one a line for dnsperf.
names()
{
	RUN=$((RUN + 1))
	awk -v n="$2" -v p="r$RUN-$$-" -v z="$3" \
		'BEGIN { for (i = 0; i < n; i++) printf "%s%d.%s A\n", p, i, z }' >"$1"
}

# dnsperf_stats FILE: "completed qps noerror servfail lost avg_ms" from a dnsperf output.
dnsperf_stats()
{
	awk '/Queries completed:/ { c = $3 } /Queries lost:/ { l = $3 }
		/Queries per second:/ { q = $4 } /Average Latency/ { a = $4 * 1000 }
		/Response codes:/ { for (i = 3; i < NF; i++) if ($i ~ /^[A-Z]+$/) r[$i] = $(i + 1) + 0 }
		END { printf "%s %.0f %d %d %s %.1f\n", c + 0, q, r["NOERROR"], r["SERVFAIL"], l + 0, a }' "$1"
}

# unread: the upstream's :853 connections' receive queues (octets dotgw or dnsperf sent that
# unbound has not read), "n1 n2 ..." largest first.
unread()
{
	ip netns exec "$NS_UP" ss -tnH state established '( sport = :853 )' |
		awk '{ print $1 }' | sort -rn | paste -sd' ' -
}

# run_pair TAG NS SLOW_ARGS -- LIGHT_NS LIGHT_ARGS: the light stream (RATE q/s, SECS + 2 s;
# none with RATE 0) and, 1 s into it, the slow load (LOAD outstanding, SECS s); results into
# TAG.slow, TAG.light, TAG.open (the upstream's request list mid-run and at most), TAG.unread,
# TAG.drops (lab_rcvbuf_drops in NS over the run: dnsperf's own, when answers come back in a
# burst larger than its buffer; dnsperf counts them lost).
run_pair()
{
	local tag=$1 ns=$2 slow=() light=() lns job=
	shift 2
	while [ "$1" != -- ]; do slow+=("$1"); shift; done
	shift
	lns=$1
	shift
	light=("$@")
	names "$LAB_DIR/$tag.slow.names" $((LOAD * 15 * SECS)) slow.test
	names "$LAB_DIR/$tag.light.names" $((RATE * (SECS + 2))) bench.test
	lab_upstream_reset
	syns >"$LAB_DIR/$tag.syn"
	lab_rcvbuf_drops "$ns" >"$LAB_DIR/$tag.drops"
	: >"$LAB_DIR/$tag.light"
	if [ "$RATE" -gt 0 ]; then
		lab_bg "$lns" "$LAB_DIR/$tag.light" "${light[@]}" -d "$LAB_DIR/$tag.light.names" \
			-n 1 -Q "$RATE" -q 1000 -t 5 -l $((SECS + 2)) -v
		job=$LAB_BG_PID
		lab_sleep 1
	fi
	lab_bg "$ns" "$LAB_DIR/$tag.slow" "${slow[@]}" -d "$LAB_DIR/$tag.slow.names" -n 1 \
		-q "$LOAD" -t 5 -l "$SECS"
	lab_sleep $((SECS / 2))
	unread >"$LAB_DIR/$tag.unread"
	lab_upstream_stat total.requestlist.current.all >"$LAB_DIR/$tag.open"
	wait "$LAB_BG_PID"
	lab_bg_forget "$LAB_BG_PID"
	if [ -n "$job" ]; then
		wait "$job"
		lab_bg_forget "$job"
	fi
	lab_upstream_stat total.requestlist.max >>"$LAB_DIR/$tag.open"
	echo $(($(syns) - $(cat "$LAB_DIR/$tag.syn"))) >"$LAB_DIR/$tag.syn"
	echo $(($(lab_rcvbuf_drops "$ns") - $(cat "$LAB_DIR/$tag.drops"))) >"$LAB_DIR/$tag.drops"
}

# light_during FILE: the light stream's answers to the names it sent while the slow load ran
# (name N goes out at N / RATE s; the load runs from 1 s to 1 + SECS s; its first 0.5 s left
# out), for bench_dnsperf_percentiles.
light_during()
{
	awk -v lo=$((RATE * 3 / 2)) -v hi=$((RATE * (SECS + 1))) '$1 == ">" {
		n = $3; sub(/^r[0-9]+-[0-9]+-/, "", n); sub(/[.].*/, "", n)
		if (n + 0 >= lo && n + 0 < hi) print }' "$1"
}

# row TAG LABEL: a table row from run_pair's files.
row()
{
	local s l p q ok
	read -r -a s <<<"$(dnsperf_stats "$LAB_DIR/$1.slow")"
	read -r -a l <<<"$(dnsperf_stats "$LAB_DIR/$1.light")"
	p=$(light_during "$LAB_DIR/$1.light" | bench_dnsperf_percentiles)
	# answers within the SECS s: dnsperf's own q/s counts the last LOAD, answered after
	q=$(((s[0] > LOAD ? s[0] - LOAD : 0) / SECS))
	# of them the NOERROR ones, in the run's proportion (SERVFAILs come back at once)
	ok=$((s[0] > 0 ? q * s[2] / s[0] : 0))
	echo "| $2 | $LOAD | $q | $ok | ${s[3]} / ${s[4]} | ${s[5]} | ${l[1]} | ${p% *} | ${p#* } | ${l[3]} / ${l[4]} | $(paste -sd/ "$LAB_DIR/$1.open") | $(cat "$LAB_DIR/$1.syn") | $(cat "$LAB_DIR/$1.unread") | $(cat "$LAB_DIR/$1.drops") |"
}

scrape()
{
	ip netns exec "$NS_GW" timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9853 &&
		printf "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3 && cat <&3' |
		sed '1,/^\r$/d' | awk '$1 ~ /^dotgw_upstream_handshakes_total/ { print $2 }'
}

UDP_DIRECT=(dnsperf -s "$LAB_UP4" -p 53)
DOT_DIRECT=(dnsperf -m dot -s "$LAB_UP4" -p 853)
VIA_DOTGW=(dnsperf -s "$LAB_DECOY4" -p 53)
ROWS=()
# Alone: the light stream through dotgw, no load (what it costs at all).
ALONE="- -"
if [ "$RATE" -gt 0 ]; then
	lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --log-level info --scope gateway \
		--interface "$LAB_GW_IF_CLIENT" --cache-size 0 >/dev/null || lab_bail "starting dotgw"
	names "$LAB_DIR/alone.names" $((RATE * (SECS + 1))) bench.test
	lab_run "$NS_CLIENT" "${VIA_DOTGW[@]}" -a "$LIGHT4" -d "$LAB_DIR/alone.names" -n 1 \
		-Q "$RATE" -q 1000 -t 5 -l "$SECS" -v
	lab_stop_dotgw
	ALONE=$(printf '%s\n' "$LAB_OUT" | bench_dnsperf_percentiles)
fi

for LOAD in $LOADS; do
	run_pair "udp-$LOAD" "$NS_GW" "${UDP_DIRECT[@]}" -- "$NS_GW" "${UDP_DIRECT[@]}"
	ROWS+=("$(row "udp-$LOAD" "UDP straight to the upstream (light: UDP too)")")
	for c in 1 8; do
		run_pair "dot$c-$LOAD" "$NS_GW" "${DOT_DIRECT[@]}" -c "$c" -- "$NS_GW" "${UDP_DIRECT[@]}"
		ROWS+=("$(row "dot$c-$LOAD" "dnsperf DoT -c $c straight to the upstream (light: UDP)")")
	done
	for pool in $POOLS; do
		for win in $WINDOWS; do
			tag="gw-$pool-$win-$LOAD"
			lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --log-level info --scope gateway \
				--interface "$LAB_GW_IF_CLIENT" --cache-size 0 --metrics 127.0.0.1:9853 \
				"${SHARE_ARGS[@]}" --pool-size "$pool" \
				--conn-inflight "$win" >/dev/null || lab_bail "starting dotgw"
			run_pair "$tag" "$NS_CLIENT" "${VIA_DOTGW[@]}" -a "$LAB_CLIENT4" -- \
				"$NS_CLIENT" "${VIA_DOTGW[@]}" -a "$LIGHT4"
			hs=$(scrape)
			lab_stop_dotgw
			ROWS+=("$(row "$tag" "dotgw --pool-size $pool --conn-inflight $win ($hs handshakes)")")
		done
	done
done
wan_stop

echo "slow upstream: misses wait $DELAY ms at the auth server (netdelay); $SECS s runs; the light"
echo "stream ($RATE q/s, names the upstream answers at once; 0: none) runs from 1 s before the slow"
echo "load to 1 s after it; its percentiles are over the names it sent 0.5 s into the load and later."
echo "dotgw: --cache-size 0, --max-inflight-per-client $SHARE (default: dotgw's own)."
echo "Light stream through dotgw with no load: p50 ${ALONE% *} ms, p99 ${ALONE#* } ms."
echo "dotgw's cap while its windows stay at their floor: --pool-size x --conn-inflight / $DELAY ms."
echo
echo "| path | slow outstanding | slow q/s | slow NOERROR q/s | slow SERVFAIL / lost | slow avg ms | light q/s | light p50 ms | light p99 ms | light SERVFAIL / lost | upstream requests open mid-run / most | SYNs to :853 | upstream unread octets per :853 conn (mid-run) | slow client's receive-buffer drops |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
printf '%s\n' "${ROWS[@]}"
echo "netdelay: $WAN_COUNTERS"
lab_finish >/dev/null
