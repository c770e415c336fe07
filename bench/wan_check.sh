#!/bin/bash
# bench/wan_check.sh - does bench/wan.sh's WAN do what it says? In the lab of tests/netns/lib.sh
# (namespaces made for the run, removed on exit), with short, bounded runs; not a benchmark.
#
#   gateway: kdig / dnsperf -m dot  ---- RTT, jitter, loss ----  upstream: unbound DoT @853
#
# 1. round trip: kdig +tls +keepopen, 6 queries on one connection, IPv4 and IPv6, without and
#    with the WAN: the reused connection's queries take the RTT (-1 ms, +5 ms); both helpers
#    saw IPv6;
# 2. order: a DoT load (dnsperf -m dot, 4 s, answers of 2500 octets) through RTT without loss
#    or jitter: no packet
#    reached either TCP stack out of order (TcpExtTCPOFOQueue in both namespaces stays 0);
#    the same with jitter does reorder (so the check can see it);
# 3. loss: the same load with LOSS_PCT (default 5%): the share netdelay dropped is within 4
#    standard deviations of the asked one, and the senders retransmitted;
# 4. afterwards (outside the lab): no namespace of the run and no netdelay process is left.
#
# Usage: sudo bench/wan_check.sh [-t netdelay|netem|auto] [RTT_MS [LOSS_PCT [JITTER_MS]]]
# (defaults 20, 5 and 10). Prints figures and "ok"/"FAIL" lines; exit 0 when all passed,
# 1 otherwise, 77 when skipped.

set -u
SELF=$(readlink -f -- "${BASH_SOURCE[0]}")

if [ "${WAN_CHECK_INNER:-}" != 1 ]; then
	# The lab runs in a child, so that what it leaves behind can be checked after its exit.
	WAN_CHECK_INNER=1 "$SELF" "$@" &
	child=$!
	wait "$child"
	rc=$?
	left=$(ip netns list 2>/dev/null | grep -c "^dotgw-$child-")
	procs=$(pgrep -x netdelay | wc -l)
	if [ "$left" = 0 ] && [ "$procs" = 0 ]; then
		echo "ok    nothing left behind (no namespace dotgw-$child-*, no netdelay process)"
	else
		echo "FAIL  left behind: $left namespaces dotgw-$child-*, $procs netdelay processes"
		[ "$rc" = 77 ] || rc=1
	fi
	exit "$rc"
fi

BENCH_SELF_DIR=$(dirname -- "$SELF")
BENCH_REPO=$(cd -- "$BENCH_SELF_DIR/.." && pwd)
tool=netdelay
while getopts "t:h" opt; do
	case $opt in
	t) tool=$OPTARG ;;
	h) sed -n '2,/^$/s/^# \{0,1\}//p' "$SELF"; exit 0 ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
RTT=${1:-20}
LOSS=${2:-5}
JITTER=${3:-10}
LAB_PROC_TIMEOUT=300

# shellcheck source-path=SCRIPTDIR source=../tests/netns/lib.sh
. "$BENCH_REPO/tests/netns/lib.sh"
# shellcheck source-path=SCRIPTDIR source=wan.sh
. "$BENCH_SELF_DIR/wan.sh"
WAN_TOOL=$tool

lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf nstat pkg-config awk
lab_setup

# rtt_ms ADDR: RTT_MED, the median time of queries 2-6 of a kdig +tls +keepopen run from the
# gateway (one TLS connection), and RTT_FIRST, the first query's (handshakes included).
rtt_ms()
{
	local out
	out=$(ip netns exec "$NS_GW" timeout 30 kdig +tls +keepopen +tls-ca="$LAB_CA" \
		+tls-hostname="$LAB_AUTH_NAME" +time=5 +retry=0 @"$1" \
		q1.bench.test q2.bench.test q3.bench.test q4.bench.test q5.bench.test q6.bench.test \
		2>&1)
	RTT_FIRST=$(printf '%s\n' "$out" | awk '/^;; From .* in [0-9.]+ ms/ { print $(NF - 1); exit }')
	RTT_MED=$(printf '%s\n' "$out" | awk '/^;; From .* in [0-9.]+ ms/ { if (n++) print $(NF - 1) }' |
		sort -g | awk '{ v[NR] = $1 } END { print NR == 5 ? v[3] : "none" }')
	[ "$RTT_MED" != none ] || printf '%s\n' "$out" | tail -n 20 | lab_indent
}

# nstat_get NS NAME: the kernel's counter NAME in NS now.
nstat_get()
{
	ip netns exec "$1" nstat -asz "$2" 2>/dev/null | awk -v k="$2" '$1 == k { print $2 }'
}

# tcp_counters: "ofo retrans" summed over gateway and upstream.
tcp_counters()
{
	local ns o=0 r=0
	for ns in "$NS_GW" "$NS_UP"; do
		o=$((o + $(nstat_get "$ns" TcpExtTCPOFOQueue)))
		r=$((r + $(nstat_get "$ns" TcpRetransSegs)))
	done
	echo "$o $r"
}

# load: 4 s of DoT queries from the gateway straight to the upstream (bounded by -l and
# timeout); LOAD_OFO, LOAD_RETRANS: what the TCP stacks counted meanwhile.
load()
{
	local names="$LAB_DIR/names" c0 c1 o0 r0 o1 r1
	# answers of about 2500 octets: two or more segments back to back, which jitter can swap
	awk 'BEGIN { for (i = 0; i < 100000; i++) print "big.example.test TXT" }' >"$names"
	c0=$(tcp_counters)
	LAB_RUN_TIMEOUT=30 lab_run "$NS_GW" dnsperf -m dot -s "$LAB_UP4" -p 853 -d "$names" \
		-n 1 -l 4 -c 4 -q 50 -t 4
	c1=$(tcp_counters)
	read -r o0 r0 <<<"$c0"
	read -r o1 r1 <<<"$c1"
	LOAD_OFO=$((o1 - o0))
	LOAD_RETRANS=$((r1 - r0))
	LOAD_QPS=$(printf '%s\n' "$LAB_OUT" | awk '/Queries per second:/ { print $4 }')
	LOAD_DONE=$(printf '%s\n' "$LAB_OUT" | awk '/Queries completed:/ { print $3 }')
}

# counter LINE KEY: KEY=N of a netdelay counter line.
counter()
{
	printf '%s\n' "$1" | grep -Eo "(^|[[:space:]])$2=[0-9]+" | head -n 1 | sed 's/.*=//'
}

# within X LO HI: LO <= X <= HI (decimals).
# shellcheck disable=SC2317 # called through lab_ok
within()
{
	awk -v x="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(x != "none" && x >= lo && x <= hi) }'
}

# --- 1. round trip
rtt_ms "$LAB_UP4"
base4=$RTT_MED
first_lan=$RTT_FIRST
rtt_ms "$LAB_UP6"
base6=$RTT_MED
lab_log "LAN: kdig +tls, reused connection: IPv4 $base4 ms, IPv6 $base6 ms (first $RTT_FIRST ms)"
WAN_RTT_MS=$RTT WAN_JITTER_MS=0 WAN_LOSS_PCT=0
wan_start || lab_bail "starting the WAN ($WAN_TOOL)"
lab_log "WAN: $(wan_describe)"
for fam in 4 6; do
	addr=$LAB_UP4
	[ $fam = 6 ] && addr=$LAB_UP6
	rtt_ms "$addr"
	t=$RTT_MED
	lab_log "IPv$fam: kdig +tls through the WAN: $t ms on the reused connection, first query $RTT_FIRST ms"
	lab_ok "IPv$fam: a query on a reused DoT connection takes the RTT ($t ms, want $RTT ms - 1 .. + 5)" \
		within "$t" "$(awk -v r="$RTT" 'BEGIN { print r - 1 }')" \
		"$(awk -v r="$RTT" 'BEGIN { print r + 5 }')"
	# kdig's first query also pays its TLS set-up, about 60 ms here even on the LAN
	lab_log "IPv$fam: the first query (TCP and TLS handshakes) took $(awk -v a="$RTT_FIRST" \
		-v b="$first_lan" -v r="$RTT" 'BEGIN { printf "%.1f", (a - b) / r }') RTT more than on the LAN"
done
if [ "$WAN_USED" = netdelay ]; then
	snap=$(wan_snapshot)
	printf '%s\n' "$snap" | lab_indent
	lab_check_num "both helpers saw IPv6 packets" "$(printf '%s\n' "$snap" |
		awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^ipv6=[1-9]/) n++ } END { print n + 0 }')" -eq 2
fi

# --- 2. order
load
lab_log "DoT load through RTT $RTT ms: $LOAD_QPS q/s, $LOAD_DONE answers; OFO packets $LOAD_OFO, retransmissions $LOAD_RETRANS"
lab_check_num "a DoT load ran through the WAN" "${LOAD_DONE:-0}" -gt 100
lab_check_num "no packet arrived out of order without jitter (TcpExtTCPOFOQueue)" "$LOAD_OFO" -eq 0
wan_stop
lab_log "netdelay counters:"
printf '%s\n' "$WAN_COUNTERS" | lab_indent
if [ "$WAN_USED_LAST" = netdelay ]; then
	n=$(printf '%s\n' "$WAN_COUNTERS" | awk '{ for (i = 1; i <= NF; i++)
		if ($i ~ /^(lost|overflow|enobufs|verdict_errors|kernel_queue_dropped|kernel_user_dropped)=/) {
			split($i, kv, "="); s += kv[2] } } END { print s + 0 }')
	lab_check_num "no packet dropped or lost by the helpers without loss" "$n" -eq 0
fi

WAN_RTT_MS=$RTT WAN_JITTER_MS=$JITTER WAN_LOSS_PCT=0
wan_start || lab_bail "starting the WAN with jitter"
load
lab_log "with jitter +-$JITTER ms: $LOAD_QPS q/s; OFO packets $LOAD_OFO"
lab_check_num "with jitter +-$JITTER ms packets are reordered (the check above can see it)" \
	"$LOAD_OFO" -gt 0
wan_stop
printf '%s\n' "$WAN_COUNTERS" | lab_indent

# --- 3. loss
if [ "$WAN_TOOL" != netem ]; then
	WAN_RTT_MS=$RTT WAN_JITTER_MS=0 WAN_LOSS_PCT=$LOSS
	wan_start || lab_bail "starting the WAN with loss"
	load
	wan_stop
	printf '%s\n' "$WAN_COUNTERS" | lab_indent
	pk=0
	lost=0
	while read -r line; do
		pk=$((pk + $(counter "$line" packets)))
		lost=$((lost + $(counter "$line" lost)))
	done <<<"$WAN_COUNTERS"
	read -r lo hi share <<<"$(awk -v n="$pk" -v p="$LOSS" -v l="$lost" 'BEGIN {
		p /= 100; sd = sqrt(n * p * (1 - p))
		printf "%d %d %.3f\n", n * p - 4 * sd, n * p + 4 * sd + 0.999, n ? 100 * l / n : 0 }')"
	lab_log "loss $LOSS%: $lost of $pk packets dropped ($share%); $LOAD_RETRANS retransmissions; $LOAD_QPS q/s"
	lab_check_num "loss: enough packets to judge" "$pk" -ge 2000
	lab_ok "loss: $lost of $pk within $lo..$hi (4 sd of $LOSS%)" within "$lost" "$lo" "$hi"
	lab_check_num "loss: the senders retransmitted" "$LOAD_RETRANS" -gt 0
fi
lab_finish
