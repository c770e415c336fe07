#!/bin/bash
# bench/run.sh - issue 5's benchmark: dotgw against the DoT and UDP ceilings of the same
# upstream and against the peers a user would pick instead (unbound, knot-resolver, dnsdist and
# stubby as DoT forwarders), in network namespaces built for the run by tests/netns/lib.sh.
#
#   client (dnsperf)        gateway                                     upstream
#  +----------------+     +-----------------------------------+     +-----------------------+
#  | 198.51.100.2   +-----+ 198.51.100.1          203.0.113.1   +-----+ 203.0.113.2           |
#  | queries        |     | one of, in turn:                  |     | unbound, 1 thread:    |
#  | 192.0.2.53:53  |     |  dotgw --mode tproxy              |     |  plain @53, DoT @853  |
#  | (the decoy's   |     |  dotgw --mode nfqueue --queues 2  |     |  (dot.test); every    |
#  | address: the   |     |  a peer @5353, a DoT forwarder    |     |  *.bench.test is A    |
#  | gateway        |     |    (unbound, kresd, dnsdist or    |     |  203.0.113.99         |
#  | captures it);  |     |    stubby) behind an nft redirect |     |                       |
#  | many: from 64  |     |    of :53                         |     |                       |
#  | addresses      |     | dnsperf for the ceilings:         |     | nft: counts SYNs to   |
#  | (SNAT)         |     |  UDP @53 and DoT @853 direct      |     | :853 (TLS conns)      |
#  +----------------+     +-----------------+-----------------+     +-----------------------+
#                                           |                  decoy 192.0.2.53: counts the
#                                           +----------------- port-53 packets that leak past
#                                                              the gateway (should be 0)
#
# Each round runs every target (udp, dot, dotpad, tproxy, doh, nfqueue, unbound, kresd, dnsdist,
# stubby) in rotated order (doh: dotgw tproxy with the upstream over DNS-over-HTTPS, issue 21;
# dotpad: the DoT ceiling with dotgw's padding and quick ACKs, see bench/README.md);
# each target runs its workloads: miss (unique names, saturating), hit (1000
# names repeated, saturating; not for the ceilings), latency (unique names at a fixed rate) and
# many (miss from 64 client addresses; not for the ceilings). Each daemon is
# started fresh for each round and stopped after it. The table shows medians over the rounds;
# bench/RESULTS.md gets a dated section with the same table, the per-round figures and the
# checks of issue 5's targets and of dotgw against every peer (issue 17).
#
# With -s TTL, a "short" workload (issue 17's short TTLs): the hit names again, under a zone
# whose answers carry that TTL, at the latency workload's rate for four TTLs, so the cache's
# entries keep expiring under load; and a target tproxy-nopf, dotgw tproxy with --no-prefetch,
# that runs it alone: the p99 of both rows is prefetch's effect.
#
# With -w RTT_MS[,JITTER_MS[,LOSS_PCT]], bench/wan.sh puts a WAN on the gateway-upstream link
# (sch_netem, or bench/netdelay.c over NFQUEUE for TCP :853 where netem is missing); every
# target's DoT traffic to the upstream crosses it, the DoT ceiling's included.
#
# Usage: sudo bench/run.sh [OPTIONS] [PATH-TO-DOTGW]   (-h lists the options)
# Needs root, dnsperf (with -m dot), unbound, nft, conntrack, and what tests/netns/lib.sh needs;
# kresd, dnsdist and stubby for those targets (bootstrap.sh bench installs them); a C compiler
# for the dotpad target (bench/nodelay.c); with -w also pkg-config and iptables-nft (for
# netdelay, where netem is missing).
# Exit status: 0 when the run completed (whatever the figures), 1 on a failure, 77 skipped.

set -u

BENCH_SELF_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
BENCH_COMMAND="$0${*:+ $*}"   # for the report
BENCH_REPO=$(cd -- "$BENCH_SELF_DIR/.." && pwd)

# Defaults: 3 rounds of about 300 s each.
BENCH_ROUNDS=3
BENCH_DURATION=8          # seconds of each saturating dnsperf run (miss, hit)
BENCH_LAT_DURATION=5      # seconds of each fixed-rate run (latency)
BENCH_LAT_RATE=2000       # queries/s of the latency workload
BENCH_OUTSTANDING=200     # dnsperf -q of the saturating workloads
BENCH_CLIENTS=8           # dnsperf -c: sockets (flows), so NFQUEUE's flow hash uses both queues
BENCH_TIMEOUT=4           # dnsperf -t: a query is lost after this (dotgw SERVFAILs at 3 s)
BENCH_MAX_RATE=100000     # names generated per second of a miss run (the file's size)
BENCH_HIT_NAMES=1000
BENCH_NFQ_QUEUES=2
BENCH_UNBOUND_THREADS=1   # num-threads of the unbound forwarder (unbound's default)
BENCH_RESULTS="$BENCH_SELF_DIR/RESULTS.md"
BENCH_ALL_TARGETS=(udp dot dotpad tproxy tproxy-nopf doh nfqueue unbound kresd dnsdist stubby)
BENCH_PEERS=(unbound kresd dnsdist stubby) # forwarders behind the nft redirect
BENCH_TARGETS=("${BENCH_ALL_TARGETS[@]}")
BENCH_TARGETS_ASKED=0     # -t given: a missing peer is an error, not a skipped target
BENCH_DNSDIST_INFLIGHT=128 # dnsdist's maxInFlight per DoT backend connection (out of order)
BENCH_KRESD_PIPELINE=1000 # kresd's net.tcp_pipeline: with its default, 100, it SERVFAILs
                          # what is beyond 100 queries waiting on its one DoT connection
BENCH_MANY=64             # -m: client addresses of the "many" workload (0: no such workload)
BENCH_FWD_PORT=5353
BENCH_DOTGW_EXTRA=()      # -a: more dotgw arguments
BENCH_WAN=                # -w: RTT_MS[,JITTER_MS[,LOSS_PCT]] between gateway and upstream
BENCH_WAN_TOOL=auto       # -W: netem, netdelay or auto (netem if the kernel has it)
BENCH_SHORT_TTL=          # -s: TTL of the "short" workload's answers (empty: no such workload)
# dotpad, the DoT ceiling that sends what dotgw sends: queries with an EDNS padding option
# (code 12; 64 zero octets make a bench name's query ~128 octets, dotgw's block), so unbound
# pads its answers to 468 octets as it does dotgw's; and from a second gateway address whose
# policy route has "quickack 1", so the client ACKs at once as dotgw does (TCP_QUICKACK), with
# bench/nodelay.c preloaded, so it sets TCP_NODELAY as dotgw does
BENCH_PAD_SRC4=203.0.113.3
BENCH_PAD_HEX=$(printf '%0128d' 0)
BENCH_PAD_TABLE=853

usage()
{
	cat <<-EOF
		Usage: sudo $0 [OPTIONS] [PATH-TO-DOTGW]
		Benchmark dotgw (default: $BENCH_REPO/build/dotgw) against the UDP and DoT ceilings
		of the same upstream and against DoT forwarders a user might pick instead (unbound,
		knot-resolver, dnsdist, stubby); print a table and append it to bench/RESULTS.md.

		  -r N        rounds; every figure is the median over them (default $BENCH_ROUNDS, min 3
		              for a result worth quoting)
		  -d SECONDS  length of each saturating run (default $BENCH_DURATION)
		  -l SECONDS  length of each fixed-rate latency run (default $BENCH_LAT_DURATION)
		  -Q QPS      rate of the latency workload (default $BENCH_LAT_RATE)
		  -q N        queries outstanding in the saturating runs (default $BENCH_OUTSTANDING)
		  -c N        dnsperf clients (sockets) (default $BENCH_CLIENTS)
		  -u N        threads of the unbound forwarder (default $BENCH_UNBOUND_THREADS)
		  -m N        the "many" workload: miss from N client addresses, one dnsperf socket
		              each (default $BENCH_MANY; 0: no such workload; ceilings: not run)
		  -t LIST     targets, comma-separated, of: ${BENCH_TARGETS[*]}
		              (default: all; a peer whose daemon is not installed is then left out)
		  -a ARG      one more argument for dotgw, e.g. -a --pool-size=1 (repeatable)
		  -w RTT_MS[,JITTER_MS[,LOSS_PCT]]
		              a WAN between gateway and upstream: round-trip delay, jitter (the
		              round trip varies by up to +-JITTER_MS) and loss per packet, e.g.
		              -w 20,0,0.2; the DoT ceiling crosses it too (see bench/wan.sh)
		  -W TOOL     how: netem (sch_netem), netdelay (bench/netdelay.c over NFQUEUE,
		              TCP ports 853 and 443 only) or auto, netem where the kernel has it (default)
		  -s TTL      the "short" workload: the hit names with answers of TTL seconds
		              (1..60, e.g. 5), at -Q for 4 TTLs; adds target tproxy-nopf (dotgw
		              tproxy --no-prefetch, this workload only) to compare p99
		  -o FILE     results file to append to (default bench/RESULTS.md; - for none)
		  -h          this help

		A full default run takes about 15 minutes.
	EOF
}

bench_uint()
{
	[[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge "${3:-1}" ] && [ "$2" -le "${4:-1000000}" ] && return 0
	echo "$0: $1 wants a whole number in ${3:-1}..${4:-1000000}, not '$2'" >&2
	exit 2
}

while getopts "r:d:l:Q:q:c:u:m:t:a:w:W:s:o:h" opt; do
	case $opt in
	r) bench_uint -r "$OPTARG" 1 50 && BENCH_ROUNDS=$OPTARG ;;
	d) bench_uint -d "$OPTARG" 1 120 && BENCH_DURATION=$OPTARG ;;
	l) bench_uint -l "$OPTARG" 1 120 && BENCH_LAT_DURATION=$OPTARG ;;
	Q) bench_uint -Q "$OPTARG" 1 100000 && BENCH_LAT_RATE=$OPTARG ;;
	q) bench_uint -q "$OPTARG" 1 10000 && BENCH_OUTSTANDING=$OPTARG ;;
	c) bench_uint -c "$OPTARG" 1 256 && BENCH_CLIENTS=$OPTARG ;;
	u) bench_uint -u "$OPTARG" 1 64 && BENCH_UNBOUND_THREADS=$OPTARG ;;
	m) bench_uint -m "$OPTARG" 0 240 && BENCH_MANY=$OPTARG ;;
	t) IFS=, read -r -a BENCH_TARGETS <<<"$OPTARG" && BENCH_TARGETS_ASKED=1 ;;
	a) BENCH_DOTGW_EXTRA+=("$OPTARG") ;;
	w) BENCH_WAN=$OPTARG ;;
	W) BENCH_WAN_TOOL=$OPTARG ;;
	s) bench_uint -s "$OPTARG" 1 60 && BENCH_SHORT_TTL=$OPTARG ;;
	o) BENCH_RESULTS=$OPTARG ;;
	h) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
for t in "${BENCH_TARGETS[@]}"; do
	case $t in
	udp | dot | dotpad | tproxy | doh | nfqueue | unbound | kresd | dnsdist | stubby | tproxy-nopf) ;;
	*) echo "$0: unknown target '$t'" >&2; exit 2 ;;
	esac
done
case $BENCH_WAN_TOOL in
auto | netem | netdelay) ;;
*) echo "$0: -W wants netem, netdelay or auto, not '$BENCH_WAN_TOOL'" >&2; exit 2 ;;
esac
[ $# -le 1 ] || { usage >&2; exit 2; }
# tproxy-nopf runs the -s workload alone: a target only with -s
if [ -z "$BENCH_SHORT_TTL" ]; then
	[[ " ${BENCH_TARGETS[*]} " == *" tproxy-nopf "* ]] && [ "$BENCH_TARGETS_ASKED" = 1 ] &&
		{ echo "$0: target tproxy-nopf runs the -s workload alone: give -s TTL" >&2; exit 2; }
	BENCH_TARGETS=("${BENCH_TARGETS[@]/tproxy-nopf/}")
	read -r -a BENCH_TARGETS <<<"${BENCH_TARGETS[*]}"
fi
BENCH_DOTGW_ARG=${1:-$BENCH_REPO/build/dotgw}

# Every background process (the resolvers, dotgw) lives at most this long: the whole run's
# estimate (about 4 saturating + 1 latency run per target and round, plus starts and stops)
# and a margin.
LAB_PROC_TIMEOUT=$((BENCH_ROUNDS * ${#BENCH_TARGETS[@]} * (4 * (BENCH_DURATION + BENCH_TIMEOUT) +
	BENCH_LAT_DURATION + BENCH_TIMEOUT + 15 + 5 * ${BENCH_SHORT_TTL:-0}) + 300))
# shellcheck source-path=SCRIPTDIR source=../tests/netns/lib.sh
. "$BENCH_REPO/tests/netns/lib.sh"
# shellcheck source-path=SCRIPTDIR source=wan.sh
. "$BENCH_SELF_DIR/wan.sh"
# shellcheck source-path=SCRIPTDIR source=percentiles.sh
. "$BENCH_SELF_DIR/percentiles.sh"
if [ -n "$BENCH_WAN" ]; then
	wan_parse "$BENCH_WAN" || exit 2
	WAN_TOOL=$BENCH_WAN_TOOL
fi

lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf awk sort getconf
# The peers' daemons: asked for (-t), each is required; by default, a missing one is left out.
bench_keep=()
for t in "${BENCH_TARGETS[@]}"; do
	case $t in
	kresd | dnsdist | stubby)
		if ! command -v "$t" >/dev/null 2>&1; then
			[ "$BENCH_TARGETS_ASKED" = 1 ] && lab_require_tools "$t"
			echo "$0: $t is not installed: target $t left out" >&2
			continue
		fi
		;;
	esac
	bench_keep+=("$t")
done
BENCH_TARGETS=("${bench_keep[@]}")
[ "$BENCH_MANY" -gt 0 ] && lab_require_tools conntrack
[ -n "$BENCH_WAN" ] && [ "$BENCH_WAN_TOOL" != netem ] && lab_require_tools pkg-config "${CC:-cc}"
lab_require_dotgw "$BENCH_DOTGW_ARG"

CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------------------------------------
# Measurements of a daemon and of the namespaces

# bench_cpu_ticks PID: utime + stime of every thread of PID, in clock ticks.
bench_cpu_ticks()
{
	local s f
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	# Fields after "pid (comm) ": state is f[0], utime f[11], stime f[12].
	read -r -a f <<<"${s##*) }"
	echo $((f[11] + f[12]))
}

# bench_hwm_kib PID: peak resident set size (VmHWM) in KiB.
bench_hwm_kib()
{
	awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null
}

# bench_syn_count: TCP SYNs that reached the upstream's port 853 so far (connection attempts).
bench_syn_count()
{
	ip netns exec "$NS_UP" nft list table inet benchcount 2>/dev/null |
		awk '{ for (i = 1; i < NF; i++) if ($i == "packets") n += $(i + 1) } END { print n + 0 }'
}

bench_syn_counter_install()
{
	ip netns exec "$NS_UP" nft -f - <<-EOF
		table inet benchcount {
			chain input {
				type filter hook input priority -10; policy accept;
				tcp dport 853 tcp flags & (syn | ack) == syn counter
			}
		}
	EOF
}

# bench_dotgw_stats: make dotgw log its counters (SIGUSR1) and print that "stats:" line.
bench_dotgw_stats()
{
	local n0 n i
	n0=$(grep -c 'stats:' "$DOTGW_LOG")
	kill -USR1 "$DOTGW_PID" 2>/dev/null || return 1
	for ((i = 0; i < 50; i++)); do
		n=$(grep -c 'stats:' "$DOTGW_LOG")
		[ "$n" -gt "$n0" ] && break
		lab_sleep 0.1
	done
	grep 'stats:' "$DOTGW_LOG" | tail -n 1
}

# bench_stat LINE KEY: the value of KEY=N in a "stats:" line (0 when absent).
bench_stat()
{
	local v
	v=$(printf '%s\n' "$1" | grep -Eo "(^|[[:space:]])$2=[0-9]+" | head -n 1 | sed 's/.*=//')
	echo "${v:-0}"
}

# The dotgw counters that should stay 0 under a load that is well-formed and within limits.
BENCH_BAD_COUNTERS=(servfail dropped overload rate_limited policy_denied reply_errors malformed
	upstream_failures upstream_bad_answers upstream_retries upstream_stalled queue_enobufs)

# bench_nfq_ids: "queue:packets ..." of every NFQUEUE bound in the gateway namespace (the
# kernel's id_sequence per queue: packets handed to it so far); nothing when none is bound.
bench_nfq_ids()
{
	ip netns exec "$NS_GW" cat /proc/net/netfilter/nfnetlink_queue 2>/dev/null |
		awk '{ printf "%s%s:%s", (NR > 1 ? " " : ""), $1, $8 }'
}

# bench_nfq_delta BEFORE AFTER: "packets of queue 0 / of queue 1 / ..." between two
# bench_nfq_ids (the queues of AFTER).
bench_nfq_delta()
{
	awk -v a="$1" -v b="$2" 'BEGIN {
		n = split(a, x, " "); for (i = 1; i <= n; i++) { split(x[i], kv, ":"); o[kv[1]] = kv[2] }
		n = split(b, y, " ")
		for (i = 1; i <= n; i++) {
			split(y[i], kv, ":")
			s = s (s == "" ? "" : " / ") kv[2] - o[kv[1]]
		}
		print s
	}'
}

# bench_stats_delta BEFORE AFTER: "key=N ..." for every bad counter that moved.
bench_stats_delta()
{
	local k d out=
	for k in "${BENCH_BAD_COUNTERS[@]}"; do
		d=$(($(bench_stat "$2" "$k") - $(bench_stat "$1" "$k")))
		[ "$d" -ne 0 ] && out+="$k=$d "
	done
	printf '%s' "${out% }"
}

# ---------------------------------------------------------------------------------------------
# Workloads

# bench_names FILE COUNT TAG: COUNT unique names under bench.test, type A.
bench_names()
{
	awk -v n="$2" -v tag="$3" \
		'BEGIN { for (i = 0; i < n; i++) printf "%s-%x.bench.test A\n", tag, i }' >"$1"
}

# The dnsperf command for a target: where it runs and what it queries.
bench_client()
{
	case $1 in
	udp) BENCH_NS=$NS_GW; BENCH_DNSPERF=(dnsperf -s "$LAB_UP4" -p 53) ;;
	dot) BENCH_NS=$NS_GW; BENCH_DNSPERF=(dnsperf -m dot -s "$LAB_UP4" -p 853) ;;
	dotpad)
		BENCH_NS=$NS_GW
		BENCH_DNSPERF=(env LD_PRELOAD="$BENCH_NODELAY" dnsperf -m dot -s "$LAB_UP4" -p 853
			-a "$BENCH_PAD_SRC4" -E "12:$BENCH_PAD_HEX")
		;;
	*) BENCH_NS=$NS_CLIENT; BENCH_DNSPERF=(dnsperf -s "$LAB_DECOY4" -p 53) ;;
	esac
}

# bench_dnsperf TARGET ARGS...: run the target's dnsperf with ARGS (bounded by -l and timeout);
# the output is in LAB_OUT, the status in LAB_RC.
bench_dnsperf()
{
	local target=$1
	shift
	bench_client "$target"
	LAB_RUN_TIMEOUT=$((BENCH_DURATION + BENCH_LAT_DURATION + BENCH_TIMEOUT + 30)) \
		lab_run "$BENCH_NS" "${BENCH_DNSPERF[@]}" -c "${BENCH_CLIENTS_RUN:-$BENCH_CLIENTS}" \
		-t "$BENCH_TIMEOUT" "$@"
}

# bench_parse_dnsperf: from LAB_OUT, print "sent completed lost servfail nxdomain qps avg sd"
# (latencies in seconds); nothing when dnsperf printed no statistics.
bench_parse_dnsperf()
{
	printf '%s\n' "$LAB_OUT" | awk '
		/Queries sent:/ { sent = $3 }
		/Queries completed:/ { done = $3 }
		/Queries lost:/ { lost = $3 }
		/Response codes:/ {
			for (i = 3; i < NF; i++) {
				if ($i == "SERVFAIL") sf = $(i + 1)
				if ($i == "NXDOMAIN") nx = $(i + 1)
			}
		}
		/Queries per second:/ { qps = $4 }
		/Average Latency/ { avg = $4 }
		/Latency StdDev/ { sd = $4 }
		END {
			if (sent == "") exit
			printf "%d %d %d %d %d %s %s %s\n", sent, done, lost, sf, nx, qps, avg, sd
		}'
}

# bench_idle: "idle total" jiffies of the whole machine so far (/proc/stat; idle + iowait).
bench_idle()
{
	awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat
}

# bench_cache_counts [STATS-LINE]: "hits lookups" of the daemon's cache so far (dotgw: from its
# stats line; unbound: unbound-control; kresd: its control socket); nothing when the daemon has
# no cache counters (dnsdist without a packet cache, stubby).
bench_cache_counts()
{
	case $BENCH_KIND in
	dotgw)
		printf '%s\n' "$1" | grep -q 'cache_hits=' || return 0
		echo "$(bench_stat "$1" cache_hits)" \
			$(($(bench_stat "$1" cache_hits) + $(bench_stat "$1" cache_misses)))
		;;
	unbound)
		ip netns exec "$NS_GW" timeout 10 unbound-control -c "$LAB_DIR/fwd.conf" stats_noreset \
			2>/dev/null | awk -F= '$1 == "total.num.cachehits" { h = $2 }
				$1 == "total.num.queries" { q = $2 } END { if (q != "") print h + 0, q }'
		;;
	kresd)
		# Its control socket (rundir/control/PID) evaluates Lua; the stats module counts
		# the answers, and those from the cache.
		timeout 10 python3 - "$LAB_DIR/kresd/control/$BENCH_PID" <<-'EOF' 2>/dev/null
			import re, socket, sys
			s = socket.socket(socket.AF_UNIX)
			s.settimeout(2)
			s.connect(sys.argv[1])
			s.sendall(b"stats.get('answer.cached') .. ' ' .. stats.get('answer.total')\n")
			out = b""
			try:
			    while not re.search(rb"\d+ \d+", out):
			        d = s.recv(4096)
			        if not d:
			            break
			        out += d
			except OSError:
			    pass
			m = re.search(rb"(\d+) (\d+)", out)
			if m:
			    print(m.group(1).decode(), m.group(2).decode())
		EOF
		;;
	esac
}

# bench_pct PART WHOLE [DECIMALS]: 100 * PART / WHOLE (0 when WHOLE is 0).
bench_pct()
{
	awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { printf "%.*f", d, b ? 100 * a / b : 0 }'
}

# bench_percentiles: "p50 p99" in ms of the dnsperf run in LAB_OUT; "- -" when it was not
# verbose.
bench_percentiles()
{
	printf '%s\n' "$LAB_OUT" | bench_dnsperf_percentiles
}

# bench_measure ROUND TARGET WORKLOAD DNSPERF-ARGS...: one measured run; appends a line to
# BENCH_TSV: round target workload qps sent completed lost% servfail% avg_ms sd_ms
# cpu_us_per_query new_tls leaked cache_hit% idle% p50_ms p99_ms. BENCH_KIND says what runs in
# the gateway (none, dotgw or unbound) and BENCH_PID is its pid.
bench_measure()
{
	local round=$1 target=$2 wl=$3 cpu0='' cpu1='' syn0 syn1 leak0 leak1 st0='' st1='' parsed
	local sent ndone lost sf nx qps avg sd cpu_us=n/a tls leaked bad='' c0 c1 hitp=- idle0 idle1
	local idlep ch0 ch1 cq0 cq1 pct nfq0='' nfq=''
	shift 3
	syn0=$(bench_syn_count)
	leak0=$(lab_decoy_count)
	[ "$BENCH_KIND" = dotgw ] && st0=$(bench_dotgw_stats)
	[ "$target" = nfqueue ] && nfq0=$(bench_nfq_ids)
	c0=$(bench_cache_counts "$st0")
	[ -n "$BENCH_PID" ] && cpu0=$(bench_cpu_ticks "$BENCH_PID")
	idle0=$(bench_idle)
	bench_dnsperf "$target" "$@"
	idle1=$(bench_idle)
	[ -n "$BENCH_PID" ] && cpu1=$(bench_cpu_ticks "$BENCH_PID")
	[ "$BENCH_KIND" = dotgw ] && st1=$(bench_dotgw_stats)
	[ "$target" = nfqueue ] && nfq=$(bench_nfq_delta "$nfq0" "$(bench_nfq_ids)")
	c1=$(bench_cache_counts "$st1")
	syn1=$(bench_syn_count)
	leak1=$(lab_decoy_count)
	parsed=$(bench_parse_dnsperf)
	if [ -z "$parsed" ]; then
		echo "  $target $wl: dnsperf failed (exit $LAB_RC):"
		printf '%s\n' "$LAB_OUT" | tail -n 15 | lab_indent
		printf '%s\t%s\t%s\tfailed\n' "$round" "$target" "$wl" >>"$BENCH_TSV"
		return 1
	fi
	read -r sent ndone lost sf nx qps avg sd <<<"$parsed"
	pct=$(bench_percentiles)
	if [ -n "$cpu0" ] && [ -n "$cpu1" ] && [ "$ndone" -gt 0 ]; then
		cpu_us=$(awk -v t=$((cpu1 - cpu0)) -v hz="$CLK_TCK" -v n="$ndone" \
			'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
	fi
	if [ "$BENCH_KIND" = dotgw ]; then
		tls=$(($(bench_stat "$st1" upstream_handshakes) - $(bench_stat "$st0" upstream_handshakes)))
		bad=$(bench_stats_delta "$st0" "$st1")
	else
		tls=$((syn1 - syn0))
	fi
	[ "$target" = udp ] && tls=n/a
	if [ -n "$c0" ] && [ -n "$c1" ]; then
		read -r ch0 cq0 <<<"$c0"
		read -r ch1 cq1 <<<"$c1"
		hitp=$(bench_pct $((ch1 - ch0)) $((cq1 - cq0)) 1)
	fi
	read -r -a idle0 <<<"$idle0"
	read -r -a idle1 <<<"$idle1"
	idlep=$(bench_pct $((idle1[0] - idle0[0])) $((idle1[1] - idle0[1])) 0)
	leaked=$((leak1 - leak0))
	if [ -n "$BENCH_NAMES_N" ] && [ "$sent" -ge "$BENCH_NAMES_N" ]; then
		# The run ended early; its rate is still right, but over a shorter time.
		printf '%s\t%s\t%s\tall %s names sent before the time limit (raise BENCH_MAX_RATE)\n' \
			"$round" "$target" "$wl" "$sent" >>"$BENCH_NOTES"
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
		"$round" "$target" "$wl" "$qps" "$sent" "$ndone" "$(bench_pct "$lost" "$sent")" \
		"$(bench_pct "$sf" "$ndone")" \
		"$(awk -v s="$avg" 'BEGIN { printf "%.3f", s * 1000 }')" \
		"$(awk -v s="$sd" 'BEGIN { printf "%.3f", s * 1000 }')" \
		"$cpu_us" "$tls" "$leaked" "$hitp" "$idlep" "${pct% *}" "${pct#* }" >>"$BENCH_TSV"
	printf '  %-8s %-7s %6.0f q/s  sent %s lost %s servfail %s nxdomain %s  avg %.2f ms%s' \
		"$target" "$wl" "$qps" "$sent" "$lost" "$sf" "$nx" \
		"$(awk -v s="$avg" 'BEGIN { print s * 1000 }')" \
		"$([ "$pct" = "- -" ] || echo " (p50 ${pct% *}, p99 ${pct#* })")"
	printf '  cpu %s us/q  tls +%s  cache hits %s%%  idle %s%%  leaked %s%s%s\n' \
		"$cpu_us" "$tls" "$hitp" "$idlep" "$leaked" "${bad:+  dotgw: $bad}" \
		"${nfq:+  packets per queue: $nfq}"
	[ -n "$nfq" ] && printf '%s\t%s\t%s\t%s\n' "$round" "$target" "$wl" "$nfq" >>"$BENCH_NFQ_TSV"
	[ -n "$bad" ] && printf '%s\t%s\t%s\t%s\n' "$round" "$target" "$wl" "$bad" >>"$BENCH_BAD"
	if [ -n "$BENCH_PID" ]; then
		BENCH_RSS_SEQ+="${BENCH_RSS_SEQ:+ / }$wl $(awk '/^VmRSS:/ { print $2 }' \
			"/proc/$BENCH_PID/status" 2>/dev/null)"
	fi
	return 0
}

# bench_is_ceiling TARGET: dnsperf straight to the upstream, no daemon of ours or a peer's.
bench_is_ceiling()
{
	case $1 in
	udp | dot | dotpad) return 0 ;;
	*) return 1 ;;
	esac
}

# bench_workloads ROUND TARGET: the target's workloads, on a server that is up and warm.
bench_workloads()
{
	local round=$1 target=$2 tag="r$1$2$RANDOM" names="$LAB_DIR/names" used
	local miss_n=$((BENCH_MAX_RATE * BENCH_DURATION))
	local lat_n=$((BENCH_LAT_RATE * (BENCH_LAT_DURATION + 2)))

	if [ "$target" = tproxy-nopf ]; then
		bench_short "$round" "$target"
		return
	fi
	bench_names "$names" "$miss_n" "m-$tag"
	BENCH_NAMES_N=$miss_n
	bench_measure "$round" "$target" miss -d "$names" -n 1 -l "$BENCH_DURATION" \
		-q "$BENCH_OUTSTANDING"
	if ! bench_is_ceiling "$target"; then
		bench_names "$names" "$BENCH_HIT_NAMES" "h-$tag"
		BENCH_NAMES_N=
		# One pass first, so a cache holds them all; then the measured run repeats them.
		bench_dnsperf "$target" -d "$names" -n 1 -l "$BENCH_DURATION" -q 50 >/dev/null
		bench_measure "$round" "$target" hit -d "$names" -l "$BENCH_DURATION" \
			-q "$BENCH_OUTSTANDING"
		[ -n "$BENCH_SHORT_TTL" ] && bench_short "$round" "$target"
	fi
	bench_names "$names" "$lat_n" "l-$tag"
	BENCH_NAMES_N=$lat_n
	# -v: one line per answer, for the percentiles.
	bench_measure "$round" "$target" latency -d "$names" -n 1 -l "$BENCH_LAT_DURATION" \
		-Q "$BENCH_LAT_RATE" -q "$BENCH_OUTSTANDING" -v
	if [ "$BENCH_MANY" -gt 0 ] && ! bench_is_ceiling "$target"; then
		bench_names "$names" "$miss_n" "n-$tag"
		BENCH_NAMES_N=$miss_n
		if bench_many_on; then
			BENCH_CLIENTS_RUN=$BENCH_MANY bench_measure "$round" "$target" many -d "$names" \
				-n 1 -l "$BENCH_DURATION" -q "$BENCH_OUTSTANDING"
			used=$(bench_many_used)
			echo "  $target many: $used distinct client addresses in the client's conntrack"
			printf '%s\t%s\t%s\n' "$round" "$target" "$used" >>"$BENCH_MANY_TSV"
		else
			printf '%s\t%s\tmany\tfailed\n' "$round" "$target" >>"$BENCH_TSV"
		fi
		bench_many_off
	fi
	rm -f -- "$names"
}

# bench_short ROUND TARGET: the -s workload: BENCH_HIT_NAMES names under short.test (answered
# with TTL BENCH_SHORT_TTL), one warming pass, then BENCH_LAT_RATE q/s for 4 TTLs: each name
# comes back every BENCH_HIT_NAMES / BENCH_LAT_RATE s, so every entry expires (or is refreshed)
# three times while it is asked. -v: one line per answer, for the percentiles.
bench_short()
{
	local names="$LAB_DIR/short-names"
	awk -v n="$BENCH_HIT_NAMES" -v tag="s-r$1$2$RANDOM" \
		'BEGIN { for (i = 0; i < n; i++) printf "%s-%x.short.test A\n", tag, i }' >"$names"
	BENCH_NAMES_N=
	bench_dnsperf "$2" -d "$names" -n 1 -q 50 >/dev/null
	bench_measure "$1" "$2" short -d "$names" -l $((4 * BENCH_SHORT_TTL)) \
		-Q "$BENCH_LAT_RATE" -q "$BENCH_OUTSTANDING" -v
	rm -f -- "$names"
}

# The "many" workload: BENCH_MANY addresses (198.51.100.10 and up) on the client's interface,
# and while it runs, a source NAT in the client namespace that gives each new flow the next of
# them (numgen inc). dnsperf opens one UDP socket per client (-c BENCH_MANY), each a flow, so
# every address carries one socket's queries. Replies come back to the addresses (the gateway
# has the client's /24 on its link) and conntrack turns them back to the client's own.
# bench_many_setup, once before the rounds: the addresses, and the NAT tried once.
bench_many_setup()
{
	lab_client_spread benchmany "$BENCH_MANY" && lab_client_spread_off benchmany
}

bench_many_on()
{
	lab_client_spread benchmany "$BENCH_MANY"
}

bench_many_off()
{
	lab_client_spread_off benchmany
}

# bench_many_used: how many distinct source addresses the last "many" run's flows had, from
# the client's conntrack table (the reply direction's destination is the translated source).
bench_many_used()
{
	ip netns exec "$NS_CLIENT" conntrack -L -p udp --dport 53 2>/dev/null |
		awk '{ n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^dst=/ && ++n == 2 && !a[$i]++) u++ }
			END { print u + 0 }'
}

# shellcheck disable=SC2317 # called through lab_wait_until
bench_answers()
{
	local a
	a=$(ip netns exec "$1" timeout 3 dig +time=1 +tries=1 +short @"$2" \
		"warm-$RANDOM$RANDOM.bench.test" A 2>/dev/null)
	[ "$a" = 203.0.113.99 ]
}

# bench_wait_answer NS SERVER: a query for a fresh name gets the upstream's answer (within 10 s).
bench_wait_answer()
{
	LAB_WAIT_PID=${BENCH_JOB:-} lab_wait_until 100 bench_answers "$1" "$2"
}

# bench_daemon_done ROUND TARGET HWM TLS_LIFE SYN_LIFE COUNTERS [WORKERS [RSS-SPLIT]]: record a
# daemon's round, with the VmRSS after each of its runs (BENCH_RSS_SEQ).
bench_daemon_done()
{
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" \
		"${BENCH_RSS_SEQ:--}" "${7:--}" "${8:--}" >>"$BENCH_DAEMONS"
	BENCH_RSS_SEQ=
}

# bench_rss_split PID: "anon N file N shmem N" (KiB) of the resident set now: what the process
# allocated, and the pages of files (its binary, libssl, libcrypto) it maps.
bench_rss_split()
{
	awk '/^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 } /^RssShmem:/ { s = $2 }
		END { printf "anon %s file %s shmem %s", a, f, s }' "/proc/$1/status" 2>/dev/null
}

# bench_dotgw_workers: the upstream answers of each worker, from the lines dotgw logs at exit
# ("upstream ...: usable, ... answers=N ..."), e.g. "68954 / 0".
bench_dotgw_workers()
{
	awk '/shutting down/ { n = NR } { l[NR] = $0 }
		END {
			for (i = n + 1; i <= NR; i++) {
				if (l[i] !~ /upstream .* answers=[0-9]/) continue
				v = l[i]; sub(/.* answers=/, "", v); sub(/[^0-9].*/, "", v)
				s = s (s == "" ? "" : " / ") v
			}
			print s == "" ? "-" : s
		}' "$DOTGW_LOG"
}

# ---------------------------------------------------------------------------------------------
# Targets: each runs its workloads for one round (starting and stopping its own daemon).

bench_target_udp()
{
	BENCH_PID='' BENCH_KIND=none bench_workloads "$1" udp
}

# bench_pad_setup: for dotpad's dnsperf, what dotgw does on its upstream sockets: the
# gateway's second address on its upstream link and a policy route for what leaves from it
# with delayed ACKs off (RTAX_QUICKACK, as dotgw's TCP_QUICKACK), in the lab's gateway
# namespace only (gone with it); and bench/nodelay.c built into LAB_DIR, an LD_PRELOAD shim
# that sets TCP_NODELAY (as dotgw does) where dnsperf sets none.
bench_pad_setup()
{
	BENCH_NODELAY=$LAB_DIR/nodelay.so
	"${CC:-cc}" -std=gnu17 -O2 -Wall -Wextra -D_GNU_SOURCE -shared -fPIC -o "$BENCH_NODELAY" \
		"$BENCH_SELF_DIR/nodelay.c" -ldl || return 1
	ip -n "$NS_GW" addr add "$BENCH_PAD_SRC4/24" dev "$LAB_GW_IF_UP" &&
		ip -n "$NS_GW" route add "$LAB_UP4" dev "$LAB_GW_IF_UP" src "$BENCH_PAD_SRC4" \
			quickack 1 table "$BENCH_PAD_TABLE" &&
		ip -n "$NS_GW" rule add from "$BENCH_PAD_SRC4" lookup "$BENCH_PAD_TABLE"
}

# bench_target_dot ROUND TARGET: a DoT ceiling (dot or dotpad).
bench_target_dot()
{
	local syn0
	syn0=$(bench_syn_count)
	BENCH_PID='' BENCH_KIND=none bench_workloads "$1" "$2"
	bench_daemon_done "$1" "$2" - - $(($(bench_syn_count) - syn0)) -
}

# bench_target_dotgw ROUND TARGET DOTGW-ARGS...
bench_target_dotgw()
{
	local round=$1 target=$2 syn0 hwm last split
	shift 2
	syn0=$(bench_syn_count)
	# --user nobody: this lab machine has no dotgw user, and looking it up loads nsswitch's
	# systemd module and libm (650-680 KiB resident) before dotgw settles on nobody; an install,
	# whose dotgw user is in /etc/passwd, never loads them (bench/RESULTS.md, helper M1).
	if ! lab_start_dotgw --scope gateway --interface "$LAB_GW_IF_CLIENT" \
		--upstream "${BENCH_UPSTREAM:-$LAB_UP4#$LAB_AUTH_NAME}" --user nobody \
		--ca-file "$LAB_CA" --log-level info "$@" "${BENCH_DOTGW_EXTRA[@]}"; then
		printf '%s\t%s\t-\tfailed\n' "$round" "$target" >>"$BENCH_TSV"
		return 1
	fi
	BENCH_JOB=$DOTGW_JOB
	if ! bench_wait_answer "$NS_CLIENT" "$LAB_DECOY4"; then
		lab_fail "dotgw $target: no answer through it within 10 s"
		lab_stop_dotgw
		return 1
	fi
	BENCH_PID=$DOTGW_PID BENCH_KIND=dotgw bench_workloads "$round" "$target"
	hwm=$(bench_hwm_kib "$DOTGW_PID")
	split=$(bench_rss_split "$DOTGW_PID")
	lab_stop_dotgw
	last=$(grep 'stats:' "$DOTGW_LOG" | tail -n 1)
	cat "$DOTGW_LOG" >>"$LAB_DIR/dotgw-all.log"
	echo "  dotgw $target exit: $last"
	bench_daemon_done "$round" "$target" "${hwm:-n/a}" \
		"$(bench_stat "$last" upstream_handshakes)" $(($(bench_syn_count) - syn0)) \
		"${last#*stats: }" "$(bench_dotgw_workers)" "$split"
}

bench_target_tproxy()
{
	bench_target_dotgw "$1" tproxy --mode tproxy
}

bench_target_tproxy-nopf()
{
	bench_target_dotgw "$1" tproxy-nopf --mode tproxy --no-prefetch
}

# doh: the same upstream over DNS-over-HTTPS (unbound serves it at :443, /dns-query).
bench_target_doh()
{
	BENCH_UPSTREAM="https://$LAB_UP4/dns-query#$LAB_AUTH_NAME" \
		bench_target_dotgw "$1" doh --mode tproxy
}

bench_target_nfqueue()
{
	bench_target_dotgw "$1" nfqueue --mode nfqueue --queues "$BENCH_NFQ_QUEUES"
}

# The forwarder listens on the gateway's client-side addresses: an nft redirect in prerouting
# rewrites the destination to the primary address of the interface the query came in on.
bench_unbound_conf()
{
	cat <<-EOF
		server:
			verbosity: 1
			use-syslog: no
			logfile: ""
			username: ""
			chroot: ""
			directory: "$LAB_DIR"
			pidfile: "$LAB_DIR/fwd.pid"
			num-threads: $BENCH_UNBOUND_THREADS
			interface: $LAB_GW_CLIENT4@$BENCH_FWD_PORT
			interface: $LAB_GW_CLIENT6@$BENCH_FWD_PORT
			access-control: 0.0.0.0/0 allow
			access-control: ::/0 allow
			module-config: "iterator"
			# unbound answers the RFC 6761 name "test." itself unless told not to.
			local-zone: "test." nodefault
			tls-cert-bundle: "$LAB_CA"
		forward-zone:
			name: "."
			forward-tls-upstream: yes
			forward-addr: $LAB_UP4@853#$LAB_AUTH_NAME
		remote-control:
			control-enable: yes
			control-use-cert: no
			control-interface: "$LAB_DIR/fwd.ctl"
	EOF
}

bench_redirect()
{
	local fam
	for fam in ip ip6; do
		ip netns exec "$NS_GW" nft -f - <<-EOF || return 1
			table $fam benchredir {
				chain pre {
					type nat hook prerouting priority dstnat; policy accept;
					udp dport 53 redirect to :$BENCH_FWD_PORT
					tcp dport 53 redirect to :$BENCH_FWD_PORT
				}
			}
		EOF
	done
}

bench_redirect_remove()
{
	ip netns exec "$NS_GW" nft delete table ip benchredir 2>/dev/null
	ip netns exec "$NS_GW" nft delete table ip6 benchredir 2>/dev/null
}

# The other peers: each a DoT forwarder to the same upstream, on the same address and port as
# the unbound forwarder, so the same redirect puts it in the clients' path. Configurations are
# written to LAB_DIR; each runs in the gateway namespace only, as root, in the foreground.

# knot-resolver: forwards everything over TLS (policy.TLS_FORWARD), its cache in LAB_DIR.
# DNSSEC validation is off (no trust anchor), as in the unbound forwarder (module-config
# "iterator"): the lab's names are unsigned under a signed root. net.tcp_pipeline is raised
# from 100: it also limits the queries waiting on an outgoing TCP/TLS connection, and kresd
# answers SERVFAIL beyond it (measured here: 53% of a -q 200 miss run; 0% with 1000).
bench_kresd_conf()
{
	cat <<-EOF
		-- bench/run.sh: knot-resolver as a DoT forwarder
		net.listen('$LAB_GW_CLIENT4', $BENCH_FWD_PORT, { kind = 'dns' })
		net.listen('$LAB_GW_CLIENT6', $BENCH_FWD_PORT, { kind = 'dns' })
		cache.open(100 * MB, 'lmdb://$LAB_DIR/kresd/cache')
		trust_anchors.remove('.')
		modules.load('stats')
		net.tcp_pipeline($BENCH_KRESD_PIPELINE)
		policy.add(policy.all(policy.TLS_FORWARD({
			{ '$LAB_UP4@853', hostname = '$LAB_AUTH_NAME', ca_file = '$LAB_CA' } })))
	EOF
}

# dnsdist: one DoT backend, out of order (maxInFlight), health-checked with a name the upstream
# answers; no packet cache (dnsdist has none unless one is configured), no security polling.
bench_dnsdist_conf()
{
	cat <<-EOF
		-- bench/run.sh: dnsdist as a DoT forwarder
		setSecurityPollSuffix('')
		setLocal('$LAB_GW_CLIENT4:$BENCH_FWD_PORT')
		addLocal('[$LAB_GW_CLIENT6]:$BENCH_FWD_PORT')
		setACL({ '0.0.0.0/0', '::/0' })
		newServer({ address = '$LAB_UP4:853', tls = 'openssl', subjectName = '$LAB_AUTH_NAME',
			caStore = '$LAB_CA', validateCertificates = true,
			maxInFlight = $BENCH_DNSDIST_INFLIGHT, checkName = 'health.bench.test.' })
	EOF
}

# stubby: strict TLS to the one upstream; no cache (stubby has none), no DNSSEC.
bench_stubby_conf()
{
	cat <<-EOF
		# bench/run.sh: stubby as a DoT forwarder
		resolution_type: GETDNS_RESOLUTION_STUB
		dns_transport_list:
		  - GETDNS_TRANSPORT_TLS
		tls_authentication: GETDNS_AUTHENTICATION_REQUIRED
		tls_ca_file: "$LAB_CA"
		appdata_dir: "$LAB_DIR/stubby"
		idle_timeout: 10000
		listen_addresses:
		  - $LAB_GW_CLIENT4@$BENCH_FWD_PORT
		  - $LAB_GW_CLIENT6@$BENCH_FWD_PORT
		upstream_recursive_servers:
		  - address_data: $LAB_UP4
		    tls_port: 853
		    tls_auth_name: "$LAB_AUTH_NAME"
	EOF
}

# bench_peer_cmd PEER: write the peer's configuration; set BENCH_PEER_CMD to its command line.
bench_peer_cmd()
{
	case $1 in
	unbound)
		bench_unbound_conf >"$LAB_DIR/fwd.conf" || return 1
		BENCH_PEER_CMD=(unbound -d -c "$LAB_DIR/fwd.conf")
		;;
	kresd)
		mkdir -p "$LAB_DIR/kresd" && bench_kresd_conf >"$LAB_DIR/kresd.conf" || return 1
		BENCH_PEER_CMD=(kresd -n -c "$LAB_DIR/kresd.conf" "$LAB_DIR/kresd")
		;;
	dnsdist)
		bench_dnsdist_conf >"$LAB_DIR/dnsdist.conf" || return 1
		BENCH_PEER_CMD=(dnsdist --supervised --disable-syslog -C "$LAB_DIR/dnsdist.conf")
		;;
	stubby)
		mkdir -p "$LAB_DIR/stubby" && bench_stubby_conf >"$LAB_DIR/stubby.yml" || return 1
		BENCH_PEER_CMD=(stubby -C "$LAB_DIR/stubby.yml")
		;;
	esac
}

# bench_peer_version PEER: its version as it prints it, and its Debian package's.
bench_peer_version()
{
	local v pkg=$1 d
	case $1 in
	unbound) v=$(unbound -V 2>&1 | awk '/^Version/ { print $2; exit }') ;;
	kresd) v=$(kresd -V 2>&1 | awk '{ print $NF; exit }') pkg=knot-resolver ;;
	dnsdist) v=$(dnsdist -V 2>&1 | awk '{ print $2; exit }') ;;
	stubby) v=$(stubby -V 2>&1 | awk '{ print $NF; exit }') ;;
	esac
	d=$(dpkg-query -W -f '${Version}' "$pkg" 2>/dev/null)
	printf '%s %s%s' "$1" "${v:-?}" "${d:+ (Debian $pkg $d)}"
}

# bench_target_peer ROUND PEER: start the peer in the gateway namespace behind the redirect,
# run the workloads through it, stop it.
bench_target_peer()
{
	local round=$1 peer=$2 syn0 pid hwm job split
	if ! bench_peer_cmd "$peer"; then
		lab_fail "$peer: writing its configuration"
		printf '%s\t%s\t-\tfailed\n' "$round" "$peer" >>"$BENCH_TSV"
		return 1
	fi
	syn0=$(bench_syn_count)
	lab_bg "$NS_GW" "$LAB_DIR/$peer.log" "${BENCH_PEER_CMD[@]}"
	job=$LAB_BG_PID
	BENCH_JOB=$job
	pid=$(lab_bg_cmd_pid "$job")
	if [ -z "$pid" ] || ! bench_redirect || ! bench_wait_answer "$NS_CLIENT" "$LAB_DECOY4"; then
		lab_fail "$peer forwarder: no answer through it within 10 s" \
			"$(tail -n 20 "$LAB_DIR/$peer.log")"
		bench_redirect_remove
		lab_bg_stop "$job"
		printf '%s\t%s\t-\tfailed\n' "$round" "$peer" >>"$BENCH_TSV"
		return 1
	fi
	BENCH_PID=$pid BENCH_KIND=$peer bench_workloads "$round" "$peer"
	hwm=$(bench_hwm_kib "$pid")
	split=$(bench_rss_split "$pid")
	bench_redirect_remove
	lab_bg_stop "$job"
	cat "$LAB_DIR/$peer.log" >>"$LAB_DIR/$peer-all.log"
	echo "  $peer: $(wc -l <"$LAB_DIR/$peer.log") log lines; the last:"
	tail -n 3 "$LAB_DIR/$peer.log" | cut -c1-200 | lab_indent
	bench_daemon_done "$round" "$peer" "${hwm:-n/a}" n/a $(($(bench_syn_count) - syn0)) - - \
		"$split"
}

# ---------------------------------------------------------------------------------------------
# Set-up

bench_environment()
{
	local commit dirty
	commit=$(git -c safe.directory='*' -C "$BENCH_REPO" rev-parse --short HEAD 2>/dev/null)
	dirty=$(git -c safe.directory='*' -C "$BENCH_REPO" status --porcelain --untracked-files=no \
		2>/dev/null | wc -l)
	BENCH_ENV_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
	BENCH_ENV_VERSION=$("$DOTGW" --version 2>&1 | head -n 1)
	BENCH_ENV_COMMIT="${commit:-unknown}${dirty:+ ($dirty tracked files modified in the tree)}"
	[ "$dirty" = 0 ] && BENCH_ENV_COMMIT=${commit:-unknown}
	BENCH_ENV_BINARY="$BENCH_DOTGW_ORIG, sha256 $(sha256sum "$DOTGW" | cut -c1-16)"
	BENCH_ENV_BINARY+=", built $(date -u -r "$BENCH_DOTGW_ORIG" '+%Y-%m-%d %H:%M UTC')"
	BENCH_ENV_KERNEL=$(uname -r)
	BENCH_ENV_CPU="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) CPUs"
	BENCH_ENV_UNBOUND=$(unbound -V 2>&1 | awk '/^Version/ { print $2; exit }')
	BENCH_ENV_PEERS=
	for t in "${BENCH_PEERS[@]}"; do
		bench_has "$t" && BENCH_ENV_PEERS+="${BENCH_ENV_PEERS:+, }$(bench_peer_version "$t")"
	done
	BENCH_ENV_DNSPERF=$(dnsperf -h 2>&1 | awk '/^Version/ { print $2; exit }')
	[ -n "$BENCH_ENV_DNSPERF" ] ||
		BENCH_ENV_DNSPERF=$(dnsperf -H 2>&1 | awk '/^Version/ { print $2; exit }')
}

# bench_pool_size: TLS connections dotgw may open per upstream and worker: --pool-size from -a,
# else the default its --help states, else 1 (before pools existed). Its default is either a
# number per worker ("(default: 2)", until 2026-12-05) or a number per upstream shared by the
# workers ("(default: 4 per upstream shared by the workers: each..."): then this prints "N/"
# and bench_pool_total reads it.
bench_pool_size()
{
	local i n=${#BENCH_DOTGW_EXTRA[@]} v='' help
	for ((i = 0; i < n; i++)); do
		case ${BENCH_DOTGW_EXTRA[$i]} in
		--pool-size=*) v=${BENCH_DOTGW_EXTRA[$i]#*=} ;;
		--pool-size) [ $((i + 1)) -lt "$n" ] && v=${BENCH_DOTGW_EXTRA[$((i + 1))]} ;;
		esac
	done
	if [ -z "$v" ]; then
		# the help text may put the default on the option's second line
		help=$("$DOTGW" --help 2>&1 | grep -A 1 -- '--pool-size N ' | tr -s ' \n' ' ')
		v=$(sed -n 's/.*(default: \([0-9][0-9]*\)).*/\1/p' <<<"$help" | head -n 1)
		[ -n "$v" ] ||
			v=$(sed -n 's/.*(default: \([0-9][0-9]*\) per upstream shared.*/\1\//p' <<<"$help" |
				head -n 1)
	fi
	echo "${v:-1}"
}

# bench_pool_total WORKERS: connections per upstream all WORKERS may hold open at once, from
# BENCH_POOL. Shared ("N/"): N in all (one worker may hold all N), or one per worker when they
# are more than N (until 2026-12-05 each held N / WORKERS, the same total). A worker past its
# share closes one when another opens its share, so across a WAN the handshakes of a daemon's
# life may pass this count.
bench_pool_total()
{
	local n
	case $BENCH_POOL in
	*/)
		n=${BENCH_POOL%/}
		[ "$1" -le "$n" ] || n=$1
		echo "$n"
		;;
	*) echo $((BENCH_POOL * $1)) ;;
	esac
}

# ---------------------------------------------------------------------------------------------
# Report

# bench_median TARGET WORKLOAD COLUMN: the median of a column of BENCH_TSV over the rounds
# (n/a when no round has a number there).
bench_median()
{
	awk -F'\t' -v t="$1" -v w="$2" -v c="$3" '
		$2 == t && $3 == w && $4 != "failed" && $c ~ /^-?[0-9.]+$/ { v[n++] = $c + 0 }
		END {
			if (!n) { print "n/a"; exit }
			for (i = 0; i < n; i++)
				for (j = i + 1; j < n; j++)
					if (v[j] < v[i]) { x = v[i]; v[i] = v[j]; v[j] = x }
			m = n % 2 ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
			print m
		}' "$BENCH_TSV"
}

# bench_max FILE TARGET WORKLOAD-OR-- COLUMN: the largest number in a column (n/a if none).
bench_max()
{
	awk -F'\t' -v t="$2" -v w="$3" -v c="$4" '
		$2 == t && (w == "-" || $3 == w) && $c ~ /^[0-9.]+$/ { if (!n++ || $c + 0 > m) m = $c + 0 }
		END { print n ? m : "n/a" }' "$1"
}

# bench_rounds TARGET WORKLOAD: the q/s of each round, "a / b / c"; for the latency and short
# workloads also each round's p99, "; p99 ms x / y / z".
bench_rounds()
{
	awk -F'\t' -v t="$1" -v w="$2" '
		$2 == t && $3 == w {
			s = s (s == "" ? "" : " / ") ($4 == "failed" ? "failed" : sprintf("%.0f", $4))
			if ($17 ~ /^[0-9.]+$/)
				p = p (p == "" ? "" : " / ") sprintf("%.1f", $17)
		}
		END { print (s == "" ? "-" : s) (p == "" ? "" : "; p99 ms " p) }' "$BENCH_TSV"
}

# bench_fmt VALUE DECIMALS [INSTEAD-OF-N/A]
bench_fmt()
{
	if [[ "$1" =~ ^-?[0-9.]+$ ]]; then
		printf "%.${2}f" "$1"
	elif [ "$1" = n/a ] && [ -n "${3:-}" ]; then
		printf '%s' "$3"
	else
		printf '%s' "$1"
	fi
}

bench_label()
{
	case $1 in
	udp) echo "UDP direct (ceiling)" ;;
	dot) echo "DoT direct (ceiling)" ;;
	dotpad) echo "DoT direct, padded, quick ACKs (ceiling)" ;;
	tproxy) echo "dotgw tproxy" ;;
	tproxy-nopf) echo "dotgw tproxy --no-prefetch" ;;
	doh) echo "dotgw tproxy, upstream over DoH" ;;
	nfqueue) echo "dotgw nfqueue x$BENCH_NFQ_QUEUES" ;;
	unbound) echo "unbound TLS forwarder" ;;
	kresd) echo "knot-resolver (kresd) TLS forwarder" ;;
	dnsdist) echo "dnsdist DoT backend (out of order)" ;;
	stubby) echo "stubby" ;;
	esac
}

bench_wl_label()
{
	case $1 in
	many) echo "miss, $BENCH_MANY client addresses" ;;
	short) echo "hit, TTL $BENCH_SHORT_TTL s, $BENCH_LAT_RATE q/s" ;;
	*) echo "$1" ;;
	esac
}

bench_has()
{
	[[ " ${BENCH_TARGETS[*]} " == *" $1 "* ]]
}

bench_table()
{
	local t w q ratio dot rss cpu tls pct
	dot=$(bench_median dot miss 4)
	printf '| %s ' target workload "q/s (median)" "x DoT ceiling" "lost %" "SERVFAIL %" \
		"avg latency ms" "latency sd ms" "p50 / p99 ms" "cache hits %" "peak RSS KiB" \
		"CPU us/query" "new TLS conns" "machine idle %" "q/s per round"
	echo "|"
	echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
	for t in "${BENCH_ALL_TARGETS[@]}"; do
		bench_has "$t" || continue
		for w in miss hit short latency many; do
			grep -q "^[0-9]*	$t	$w	" "$BENCH_TSV" || continue
			q=$(bench_median "$t" "$w" 4)
			ratio=-
			if [ "$w" != latency ] && [ "$w" != short ] && [[ "$q" =~ ^[0-9.]+$ ]] &&
				[[ "$dot" =~ ^[0-9.]+$ ]]; then
				ratio=$(awk -v a="$q" -v b="$dot" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
			fi
			rss=-
			bench_is_ceiling "$t" || rss=$(bench_max "$BENCH_DAEMONS" "$t" - 3)
			cpu=$(bench_median "$t" "$w" 11)
			bench_is_ceiling "$t" && cpu=-
			tls=$(bench_max "$BENCH_TSV" "$t" "$w" 12)
			pct=-
			[ "$w" = latency ] || [ "$w" = short ] &&
				pct="$(bench_fmt "$(bench_median "$t" "$w" 16)" 3) / $(bench_fmt \
					"$(bench_median "$t" "$w" 17)" 3)"
			printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
				"$(bench_label "$t")" "$(bench_wl_label "$w")" "$(bench_fmt "$q" 0)" "$ratio" \
				"$(bench_fmt "$(bench_median "$t" "$w" 7)" 2)" \
				"$(bench_fmt "$(bench_median "$t" "$w" 8)" 2)" \
				"$(bench_fmt "$(bench_median "$t" "$w" 9)" 3)" \
				"$(bench_fmt "$(bench_median "$t" "$w" 10)" 3)" "$pct" \
				"$(bench_fmt "$(bench_median "$t" "$w" 14)" 1 -)" \
				"$rss" "$(bench_fmt "$cpu" 1)" "$tls" \
				"$(bench_fmt "$(bench_median "$t" "$w" 15)" 0)" "$(bench_rounds "$t" "$w")"
		done
	done
}

# bench_check DESC MET(yes|no|n/a) DETAIL [EXPECTED-NOTE]
bench_check()
{
	local verdict
	case $2 in
	yes) verdict=met ;;
	no) verdict="NOT met" ;;
	*) verdict=n/a ;;
	esac
	printf -- '- %s: **%s** (%s)%s\n' "$1" "$verdict" "$3" "${4:+ - $4}"
}

# bench_calc X "OP Y": X OP Y, or n/a when X is not a number.
bench_calc()
{
	if [[ "$1" =~ ^-?[0-9.]+$ ]]; then
		awk -v x="$1" "BEGIN { print x $2 }"
	else
		echo n/a
	fi
}

# bench_cmp A OP B: awk numeric comparison; prints yes, no or n/a (when a side is not a number).
bench_cmp()
{
	if [[ "$1" =~ ^-?[0-9.]+$ ]] && [[ "$3" =~ ^-?[0-9.]+$ ]]; then
		awk -v a="$1" -v b="$3" "BEGIN { print (a $2 b) ? \"yes\" : \"no\" }"
	else
		echo n/a
	fi
}

bench_targets()
{
	local udp dot pad unb m t h l ul rss life pool n nfq tp w
	udp=$(bench_median udp miss 4)
	dot=$(bench_median dot miss 4)
	pad=$(bench_median dotpad miss 4)
	unb=$(bench_median unbound miss 4)
	ul=$(bench_median udp latency 9)
	if bench_has tproxy && bench_has tproxy-nopf; then
		h=$(bench_median tproxy short 17)
		l=$(bench_median tproxy-nopf short 17)
		bench_check "short TTLs ($BENCH_SHORT_TTL s): p99 with --prefetch below without" \
			"$(bench_cmp "$h" '<' "$l")" "$(bench_fmt "$h" 3) vs $(bench_fmt "$l" 3) ms"
	fi
	for t in tproxy nfqueue; do
		bench_has "$t" || continue
		m=$(bench_median "$t" miss 4)
		bench_check "$t miss >= 0.9 x DoT ceiling" \
			"$(bench_cmp "$m" '>=' "$(bench_calc "$dot" "* 0.9")")" \
			"$(bench_fmt "$m" 0) vs 0.9 x $(bench_fmt "$dot" 0) q/s"
		if bench_has dotpad; then
			bench_check "$t miss >= 0.9 x the padded DoT ceiling (dotpad: dotgw's padding and quick ACKs)" \
				"$(bench_cmp "$m" '>=' "$(bench_calc "$pad" "* 0.9")")" \
				"$(bench_fmt "$m" 0) vs 0.9 x $(bench_fmt "$pad" 0) q/s"
		fi
		bench_check "$t miss ahead of the unbound forwarder" "$(bench_cmp "$m" '>' "$unb")" \
			"$(bench_fmt "$m" 0) vs $(bench_fmt "$unb" 0) q/s"
		h=$(bench_median "$t" hit 4)
		bench_check "$t hit >= 0.9 x UDP ceiling" \
			"$(bench_cmp "$h" '>=' "$(bench_calc "$udp" "* 0.9")")" \
			"$(bench_fmt "$h" 0) vs 0.9 x $(bench_fmt "$udp" 0) q/s" \
			"${BENCH_NOCACHE_NOTE}"
		l=$(bench_median "$t" latency 9)
		bench_check "$t latency at $BENCH_LAT_RATE q/s within 0.3 ms of UDP direct" \
			"$(bench_cmp "$l" '<=' "$(bench_calc "$ul" "+ 0.3")")" \
			"average $(bench_fmt "$l" 3) ms vs $(bench_fmt "$ul" 3) ms; p50 $(bench_fmt \
				"$(bench_median "$t" latency 16)" 3) ms vs $(bench_fmt \
				"$(bench_median udp latency 16)" 3) ms"
		rss=$(bench_max "$BENCH_DAEMONS" "$t" - 3)
		bench_check "$t peak RSS <= 8 MiB" "$(bench_cmp "$rss" '<=' 8192)" "$rss KiB"
		w=1
		[ "$t" = nfqueue ] && w=$BENCH_NFQ_QUEUES
		pool=$(bench_pool_total "$w")
		life=$(bench_max "$BENCH_DAEMONS" "$t" - 4)
		n=$(bench_max "$BENCH_DAEMONS" "$t" - 5)
		bench_check "$t TLS connections <= pool size ($pool: 1 upstream x $w\
 worker(s) x $((pool / w)))" \
			"$(bench_cmp "$life" '<=' "$pool")" \
			"at most $life handshakes per daemon life ($n SYNs at the upstream's :853)"
	done
	if [ -n "$BENCH_WAN" ]; then
		for t in tproxy nfqueue; do
			bench_has "$t" || continue
			m=$(bench_median "$t" miss 4)
			bench_check "$t miss >= 0.95 x DoT ceiling across the WAN (issue 17)" \
				"$(bench_cmp "$m" '>=' "$(bench_calc "$dot" "* 0.95")")" \
				"$(bench_fmt "$m" 0) vs 0.95 x $(bench_fmt "$dot" 0) q/s"
			bench_has dotpad || continue
			bench_check "$t miss >= 0.95 x the padded DoT ceiling across the WAN (issue 17)" \
				"$(bench_cmp "$m" '>=' "$(bench_calc "$pad" "* 0.95")")" \
				"$(bench_fmt "$m" 0) vs 0.95 x $(bench_fmt "$pad" 0) q/s"
		done
	fi
	if bench_has tproxy && bench_has nfqueue; then
		nfq=$(bench_median nfqueue miss 4)
		tp=$(bench_median tproxy miss 4)
		bench_check "nfqueue miss >= 0.9 x tproxy miss" \
			"$(bench_cmp "$nfq" '>=' "$(bench_calc "$tp" "* 0.9")")" \
			"$(bench_fmt "$nfq" 0) vs 0.9 x $(bench_fmt "$tp" 0) q/s"
	fi
}

# bench_vs_peers DESC TARGET WORKLOAD COLUMN OP UNIT DECIMALS: is the target's median (WORKLOAD
# -: its daemon's peak RSS) OP every peer's in this run? One line, every peer's figure in it.
bench_vs_peers()
{
	local desc=$1 t=$2 wl=$3 col=$4 op=$5 unit=$6 dec=$7 v p pv ok=yes detail=
	if [ "$wl" = - ]; then
		v=$(bench_max "$BENCH_DAEMONS" "$t" - 3)
	else
		v=$(bench_median "$t" "$wl" "$col")
	fi
	[[ "$v" =~ ^[0-9.]+$ ]] || ok=n/a
	for p in "${BENCH_PEERS[@]}"; do
		bench_has "$p" || continue
		if [ "$wl" = - ]; then
			pv=$(bench_max "$BENCH_DAEMONS" "$p" - 3)
		else
			pv=$(bench_median "$p" "$wl" "$col")
		fi
		detail+="${detail:+, }$p $(bench_fmt "$pv" "$dec")"
		case $(bench_cmp "$v" "$op" "$pv") in
		no) [ "$ok" = n/a ] || ok=no ;;
		n/a) [ "$ok" = yes ] && ok=n/a ;;
		esac
	done
	[ -n "$detail" ] || return 0
	bench_check "$t $desc" "$ok" "$(bench_fmt "$v" "$dec") $unit vs $detail"
}

# The comparisons with the peers that issue 17 asks for, for each dotgw target.
bench_peer_checks()
{
	local t
	for t in tproxy nfqueue; do
		bench_has "$t" || continue
		bench_vs_peers "miss q/s ahead of every peer" "$t" miss 4 '>' q/s 0
		bench_vs_peers "miss CPU us/query below every peer's" "$t" miss 11 '<' us 1
		bench_vs_peers "hit CPU us/query below every peer's" "$t" hit 11 '<' us 1
		bench_vs_peers "p99 at $BENCH_LAT_RATE q/s below every peer's" "$t" latency 17 '<' ms 2
		bench_vs_peers "peak RSS below every peer's" "$t" - 3 '<' KiB 0
		[ "$BENCH_MANY" -gt 0 ] &&
			bench_vs_peers "miss from $BENCH_MANY addresses ahead of every peer" "$t" many 4 \
				'>' q/s 0
	done
	return 0
}

bench_notes()
{
	local line n
	if [ "$BENCH_CACHE" = 1 ]; then
		echo "- dotgw has an answer cache (--cache-size; see the arguments above), and so has unbound:"
		echo "  *hit* rows are real cache hits (1000 names, warmed by one pass first); *miss* rows use"
		echo "  names never asked before (unique per run). 'cache hits %' shows what each daemon's"
		echo "  own counters say (dotgw: cache_hits / (cache_hits + cache_misses); unbound:"
		echo "  total.num.cachehits / total.num.queries; kresd: answer.cached / answer.total of its"
		echo "  stats module)."
	else
		echo "- This dotgw has no cache: its *hit* rows measure the same path as *miss* (every query"
		echo "  goes to the upstream over TLS). unbound caches: its *hit* row is a real cache hit, and"
		echo "  its *miss* row uses names never asked before (unique per run), so it is a real miss."
	fi
	if bench_has kresd || bench_has dnsdist || bench_has stubby; then
		echo "- The peers: kresd caches (its *hit* rows are cache hits); dnsdist (no packet cache"
		echo "  configured) and stubby (none) forward every query, so their *hit* rows are the same"
		echo "  path as *miss* with 1000 names repeated. Each listens on the gateway's address, port"
		echo "  $BENCH_FWD_PORT, behind the same nft redirect of port 53 as the unbound forwarder."
	fi
	if [ -s "$BENCH_MANY_TSV" ]; then
		echo "- many: distinct client addresses of each run's flows (the client's conntrack), per"
		echo "  target and round:"
		awk -F'\t' '{ v[$2] = v[$2] (v[$2] == "" ? "" : " / ") $3; if (!s[$2]++) o[++n] = $2 }
			END { for (i = 1; i <= n; i++) printf "  - %s: %s\n", o[i], v[o[i]] }' \
			"$BENCH_MANY_TSV"
	fi
	if [ -s "$BENCH_NFQ_TSV" ]; then
		echo "- nfqueue: packets the kernel handed to each queue (queue 0 / queue 1 ...) in each run"
		echo "  (id_sequence of /proc/net/netfilter/nfnetlink_queue in the gateway namespace). The"
		echo "  kernel picks the queue by a hash of the IP addresses only, so a workload from one"
		echo "  address uses one queue and one worker; *many* should use them all:"
		awk -F'\t' '{ printf "  - round %s %s: %s\n", $1, $3, $4 }' "$BENCH_NFQ_TSV"
	fi
	echo "- Ceilings: dnsperf in the gateway namespace straight to the upstream (one unbound thread);"
	echo "  they have no daemon of their own, so RSS and CPU are '-'. 'new TLS conns' for dotgw is"
	echo "  its upstream_handshakes counter (SIGUSR1 before and after each run); for the peers"
	echo "  and the DoT ceiling it is the TCP SYNs that reached the upstream's :853"
	echo "  (connection attempts), counted by nft in the upstream namespace. UDP: n/a."
	if bench_has dotpad; then
		echo "- The padded DoT ceiling (dotpad) sends what dotgw sends: each query carries an EDNS"
		echo "  padding option (64 octets, ~128-octet queries), so unbound pads its answers to 468"
		echo "  octets (pad-responses) as it does dotgw's; the plain DoT ceiling's answers are not"
		echo "  padded. dotpad's dnsperf also sends from $BENCH_PAD_SRC4, whose route has"
		echo "  'quickack 1' (no delayed ACKs, as dotgw's TCP_QUICKACK): unbound 1.17 sends DoT"
		echo "  without TCP_NODELAY, so with delayed ACKs its Nagle holds answers (the plain"
		echo "  ceiling's p50 of ~4 ms at 2k q/s); and with bench/nodelay.c preloaded, which sets"
		echo "  TCP_NODELAY (as dotgw does) where dnsperf sets none: across a WAN, Nagle on"
		echo "  dnsperf's side holds each query until the previous one is acknowledged."
		echo "  The 'x DoT ceiling' column is against the plain one."
	fi
	echo "- CPU us/query: utime+stime of the daemon (all threads, /proc/PID/stat, ${CLK_TCK} Hz"
	echo "  ticks) over the run divided by completed queries. Peak RSS: VmHWM at the end of each"
	echo "  round's daemon (covers all its workloads), the largest over the rounds."
	if [ -s "$BENCH_BAD" ]; then
		echo "- dotgw counters that moved during measured runs (round target workload: deltas):"
		while IFS= read -r line; do
			printf '  - %s\n' "$(printf '%s' "$line" | tr '\t' ' ')"
		done <"$BENCH_BAD"
	else
		echo "- dotgw counters ${BENCH_BAD_COUNTERS[*]}"
		echo "  stayed 0 in every measured run (those this dotgw has)."
	fi
	if [ ! -s "$BENCH_NFQ_TSV" ] &&
		awk -F'\t' '$2 == "nfqueue" && $8 ~ /(^| )0( |$)/ { f = 1 } END { exit !f }' \
			"$BENCH_DAEMONS"; then
		echo "- nfqueue: a worker got no queries (see 'upstream answers per worker' below): NFQUEUE"
		echo "  spreads packets over the queues by a hash of the IP addresses only (not the ports), and"
		echo "  all queries come from one client address here, so one queue and one worker do all the"
		echo "  work. With many clients both workers would be used."
	fi
	n=$(awk -F'\t' '$13 ~ /^[0-9]+$/ { s += $13 } END { print s + 0 }' "$BENCH_TSV")
	echo "- Port-53 packets that leaked past the gateway to the decoy during measured runs: $n."
	if [ -n "$BENCH_WAN" ]; then
		echo "- WAN: every target's TLS traffic to the upstream crosses it (dotgw, the peers and the"
		echo "  DoT ceiling alike), so the ratios to the DoT ceiling compare like with like."
		echo "  'latency' rows include the round trip."
		if [ "$WAN_USED_LAST" = netdelay ]; then
			echo "  netdelay delays TCP :853 and :443 only: the UDP ceiling is a LAN figure. Its counters over the"
			echo "  whole run (warm-ups included; lost = dropped on purpose, the rest should be 0):"
			printf '%s\n' "$WAN_COUNTERS" | sed 's/^/  - /'
		fi
	fi
	if [ -s "$BENCH_NOTES" ]; then
		echo "- Runs to read with care:"
		awk -F'\t' '{ printf "  - round %s %s %s: %s\n", $1, $2, $3, $4 }' "$BENCH_NOTES"
	fi
	if grep -q failed "$BENCH_TSV"; then
		echo "- Failed runs:"
		awk -F'\t' '$4 == "failed" { printf "  - round %s %s %s\n", $1, $2, $3 }' "$BENCH_TSV"
	fi
}

bench_daemon_lines()
{
	# Counters that are 0 are left out.
	awk -F'\t' '$2 != "dot" && $2 != "dotpad" {
		n = split($6, kv, " "); c = ""
		for (i = 1; i <= n; i++) if (kv[i] !~ /=0$/) c = c (c == "" ? "" : " ") kv[i]
		printf "- round %s %s: VmHWM %s KiB; VmRSS after each run (KiB): %s; ", $1, $2, $3, $7
		printf "at the end (KiB): %s; handshakes %s, SYNs to :853 %s", $9, $4, $5
		if ($8 != "-") printf "; upstream answers in its exit log (per worker or per upstream, as this dotgw logs them): %s", $8
		if ($6 != "-") printf "; non-zero exit counters: %s", c
		printf "\n"
	}
		$2 == "dot" || $2 == "dotpad" { printf "- round %s %s ceiling: SYNs to :853 %s\n", $1, $2, $5 }' \
		"$BENCH_DAEMONS"
}

bench_report()
{
	cat <<-EOF
		## $BENCH_ENV_DATE

		- command: \`$BENCH_COMMAND\`
		- dotgw: $BENCH_ENV_VERSION; commit $BENCH_ENV_COMMIT
		- binary: $BENCH_ENV_BINARY
		- kernel $BENCH_ENV_KERNEL; CPU $BENCH_ENV_CPU
		- unbound $BENCH_ENV_UNBOUND (upstream: 1 thread, query logging off;
		  forwarder: $BENCH_UNBOUND_THREADS thread(s), defaults otherwise); dnsperf $BENCH_ENV_DNSPERF
		- peers (DoT forwarders behind the same nft redirect): ${BENCH_ENV_PEERS:-none};
		  kresd: 1 process, 100 MiB cache, no DNSSEC validation, net.tcp_pipeline
		  $BENCH_KRESD_PIPELINE; dnsdist: maxInFlight $BENCH_DNSDIST_INFLIGHT, no packet cache; stubby: no cache
	EOF
	[ "$BENCH_MANY" -gt 0 ] && printf -- '- many: %s client addresses, dnsperf -c %s (one socket each)\n' \
		"$BENCH_MANY" "$BENCH_MANY"
	cat <<-EOF
		- dotgw arguments: --scope gateway --interface $LAB_GW_IF_CLIENT --upstream $LAB_UP4#$LAB_AUTH_NAME --user nobody --ca-file CA
		  --log-level info, --mode tproxy or --mode nfqueue --queues $BENCH_NFQ_QUEUES${BENCH_DOTGW_EXTRA[*]:+, and }${BENCH_DOTGW_EXTRA[*]};
		  pool size $(bench_pool_total 1) per upstream with one worker (tproxy), $(bench_pool_total "$BENCH_NFQ_QUEUES") with $BENCH_NFQ_QUEUES (nfqueue)
		- $BENCH_ROUNDS rounds; saturating runs ${BENCH_DURATION} s with -q $BENCH_OUTSTANDING;
		  latency runs ${BENCH_LAT_DURATION} s at -Q $BENCH_LAT_RATE;
		  dnsperf -c $BENCH_CLIENTS -t $BENCH_TIMEOUT; IPv4, UDP; wall time ${BENCH_WALL} s
	EOF
	[ -n "$BENCH_WAN" ] && printf -- '- WAN between gateway and upstream (-w %s): %s\n' \
		"$BENCH_WAN" "$BENCH_WAN_DESC"
	echo
	bench_table
	printf '\n### Targets of issue 5 in this run\n\n'
	bench_targets
	if [ -n "$BENCH_ENV_PEERS" ] && { bench_has tproxy || bench_has nfqueue; }; then
		printf '\n### dotgw against the peers in this run (issue 17)\n\n'
		bench_peer_checks
	fi
	printf '\n### Notes\n\n'
	bench_notes
	printf '\n### Daemons per round\n\n'
	bench_daemon_lines
	echo
}

# ---------------------------------------------------------------------------------------------
# Main

BENCH_DOTGW_ORIG=$DOTGW
BENCH_START=$SECONDS
# The upstream serves DNS-over-HTTPS too, for the doh target.
LAB_UP_EXTRA_CONF="	interface: $LAB_UP4@443
	https-port: 443
	http-endpoint: \"/dns-query\""
# -s: every name under short.test is answered with the short TTL, afresh each time (local
# data, not a cache counting down)
[ -n "$BENCH_SHORT_TTL" ] && LAB_UP_EXTRA_CONF+="
	local-zone: \"short.test.\" redirect
	local-data: \"short.test. $BENCH_SHORT_TTL A 203.0.113.98\""
lab_setup
# A private copy: a rebuild of build/ during the run must not change what is measured.
cp -- "$DOTGW" "$LAB_DIR/dotgw" && chmod 755 "$LAB_DIR/dotgw" && DOTGW=$LAB_DIR/dotgw
bench_environment
lab_upstream_quiet || lab_bail "restarting the upstream without query logging"
bench_syn_counter_install || lab_bail "installing the SYN counter in the upstream namespace"
if bench_has dotpad; then
	bench_pad_setup || lab_bail "adding $BENCH_PAD_SRC4 and its quickack route for dotpad"
fi
if [ -n "$BENCH_WAN" ]; then
	wan_start || lab_bail "setting up the WAN ($BENCH_WAN, -W $BENCH_WAN_TOOL)"
	lab_log "WAN between gateway and upstream: $(wan_describe)"
	BENCH_WAN_DESC=$(wan_describe)
fi
BENCH_TSV=$LAB_DIR/runs.tsv
BENCH_DAEMONS=$LAB_DIR/daemons.tsv
BENCH_BAD=$LAB_DIR/bad.tsv
BENCH_NOTES=$LAB_DIR/notes.tsv
: >"$BENCH_TSV"
: >"$BENCH_DAEMONS"
: >"$BENCH_BAD"
: >"$BENCH_NOTES"
BENCH_MANY_TSV=$LAB_DIR/many.tsv
BENCH_NFQ_TSV=$LAB_DIR/nfq.tsv
: >"$BENCH_MANY_TSV"
: >"$BENCH_NFQ_TSV"
if [ "$BENCH_MANY" -gt 0 ]; then
	bench_many_setup || lab_bail "adding $BENCH_MANY client addresses for the many workload"
fi
BENCH_NAMES_N=
BENCH_KIND=none
BENCH_PID=
BENCH_RSS_SEQ=
BENCH_POOL=$(bench_pool_size)
BENCH_CACHE=0
BENCH_NOCACHE_NOTE="expected not met: this dotgw has no cache"
if "$DOTGW" --help 2>&1 | grep -q -- '--cache-size' &&
	! [[ " ${BENCH_DOTGW_EXTRA[*]} " =~ " --cache-size"[=\ ]"0 " ]]; then
	BENCH_CACHE=1
	BENCH_NOCACHE_NOTE=
fi
BENCH_JOB=

lab_log "$BENCH_ROUNDS rounds of: ${BENCH_TARGETS[*]} (rotated); dotgw $BENCH_DOTGW_ORIG"
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
	n=${#BENCH_TARGETS[@]}
	for ((i = 0; i < n; i++)); do
		t=${BENCH_TARGETS[$(((i + r - 1) % n))]}
		lab_log "round $r/$BENCH_ROUNDS: $t ($((SECONDS - BENCH_START)) s so far)"
		BENCH_JOB=
		BENCH_RSS_SEQ=
		case $t in
		udp) bench_target_udp "$r" ;;
		dot | dotpad) bench_target_dot "$r" "$t" ;;
		tproxy) bench_target_tproxy "$r" ;;
		tproxy-nopf) bench_target_tproxy-nopf "$r" ;;
		doh) bench_target_doh "$r" ;;
		nfqueue) bench_target_nfqueue "$r" ;;
		unbound | kresd | dnsdist | stubby) bench_target_peer "$r" "$t" ;;
		esac
	done
done
BENCH_WALL=$((SECONDS - BENCH_START))
if [ -n "$BENCH_WAN" ]; then
	wan_stop
	[ -n "$WAN_COUNTERS" ] && printf '%s\n' "$WAN_COUNTERS" | sed 's/^/# netdelay /'
fi

report=$(bench_report)
echo
printf '%s\n' "$report"
if [ "$BENCH_RESULTS" != - ]; then
	if [ ! -s "$BENCH_RESULTS" ]; then
		printf '# Benchmark results (bench/run.sh)\n\n%s\n\n' \
			"Newest last. See bench/README.md for what the rows mean." >"$BENCH_RESULTS"
	fi
	printf '%s\n' "$report" >>"$BENCH_RESULTS"
	lab_log "appended to $BENCH_RESULTS"
fi
[ "$LAB_FAILED" -eq 0 ] || exit 1
exit 0
