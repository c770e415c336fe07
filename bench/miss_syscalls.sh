#!/bin/bash
# bench/miss_syscalls.sh - syscalls and context switches per cache-miss query of one or more
# dotgw binaries: counts, not timings (the machine is shared). In a lab of tests/netns/lib.sh:
# dotgw --mode tproxy --scope gateway --log-level info (as bench/run.sh), then dnsperf from
# the client asking N names of their own (-c 8 -q 200 by default), every one a miss, while
# perf stat counts dotgw's (all threads') epoll_wait, recvmmsg, sendmmsg, read, write,
# setsockopt, context switches and user+system CPU. Printed per query, with the pure ACKs
# dotgw sent on its :853 connections (ss -ti: segs_out - data_segs_out), and with QPS set the
# p50 / p99 latency (dnsperf -v). Bounded: N queries, dnsperf -l 60.
#
# "dot" in place of a binary: dnsperf's own DoT from the gateway namespace straight to the
# upstream, the reference of bench/run.sh's ratios (q/s and latency only).
# Usage: sudo bench/miss_syscalls.sh DOTGW [DOTGW...]   (env: N (20000), C (8), Q (200),
# ROUNDS (1): each binary runs ROUNDS times, interleaved with the others; QPS: dnsperf -Q, a
# rate limit, for the cost and latency at a low rate; HIT=1: one name, all hits but the first;
# ARGS: more dotgw arguments, after the lab's, e.g. ARGS="--mode nfqueue --queues 2")

# shellcheck source=../tests/netns/lib.sh
. "$(dirname "$0")/../tests/netns/lib.sh"
# shellcheck source=percentiles.sh
. "$(dirname "$0")/percentiles.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" perf dnsperf
[ "${1:-}" = dot ] || lab_require_dotgw "${1:-}"
N=${N:-20000}
ROUNDS=${ROUNDS:-1}
EVENTS=context-switches,task-clock
for s in epoll_wait recvmmsg sendmmsg recvmsg sendmsg sendto read write sched_yield setsockopt; do
	EVENTS+=",syscalls:sys_enter_$s"
done
lab_setup
round=0
read -ra extra <<<"${ARGS:-}"

# pure_acks: segments without data dotgw sent on its upstream connections (open ones)
pure_acks()
{
	ip netns exec "$NS_GW" ss -Htni state established "( dport = :853 )" |
		awk '{ for (i = 1; i <= NF; i++) { split($i, kv, ":"); v[kv[1]] = kv[2] }
		       n += v["segs_out"] - v["data_segs_out"]; delete v }
		     END { print n + 0 }'
}
for ((r = 0; r < ROUNDS; r++)); do
	for bin in "$@"; do
		round=$((round + 1))
		# names of this round's own: the upstream's cache and dotgw's never hold them
		for ((i = 0; i < N; i++)); do
			if [ "${HIT:-0}" = 1 ]; then echo "www.example.test A"; else
				echo "r$round-q$i.example.test A"; fi
		done >"$LAB_DIR/q.txt"
		if [ "$bin" = dot ]; then
			lab_in "$NS_GW" dnsperf -m dot -s "$LAB_UP4" -p 853 -d "$LAB_DIR/q.txt" -n 1 \
				-c "${C:-8}" -q "${Q:-200}" -t 4 -l 60 ${QPS:+-Q "$QPS"} >"$LAB_DIR/dnsperf.txt" 2>&1
			awk '/Queries completed:/ {q = $3} /Queries per second:/ {qps = $4}
				/Average Latency/ {lat = $4 * 1000}
				END { printf "dot: %d answered, %.0f q/s, latency avg %.3f ms\n", q, qps, lat }' \
				"$LAB_DIR/dnsperf.txt"
			continue
		fi
		DOTGW=$bin # read by lab_start_dotgw
		lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway \
			--interface "$LAB_GW_IF_CLIENT" --log-level info "${extra[@]}" || lab_bail "$bin: no start"
		lab_in "$NS_CLIENT" dig +short @"$LAB_DECOY4" warm.example.test >/dev/null
		perf stat -x, -e "$EVENTS" -p "$DOTGW_PID" -o "$LAB_DIR/perf.txt" &
		perf_pid=$!
		lab_sleep 0.3
		acks0=$(pure_acks)
		lab_in "$NS_CLIENT" dnsperf -s "$LAB_DECOY4" -d "$LAB_DIR/q.txt" -n 1 \
			-c "${C:-8}" -q "${Q:-200}" -t 4 -l 60 ${QPS:+-Q "$QPS" -v} >"$LAB_DIR/dnsperf.txt" 2>&1
		kill -INT "$perf_pid"
		wait "$perf_pid"
		acks=$(($(pure_acks) - acks0))
		lab_stop_dotgw
		pct=$(bench_dnsperf_percentiles <"$LAB_DIR/dnsperf.txt")
		if [ "$pct" = "- -" ]; then
			pct=-
		else
			pct="${pct% *} / ${pct#* }"
		fi
		done_q=$(awk '/Queries completed:/ {print $3}' "$LAB_DIR/dnsperf.txt")
		qps=$(awk '/Queries per second:/ {print $4}' "$LAB_DIR/dnsperf.txt")
		lat=$(awk '/Average Latency/ {printf "%.3f", $4 * 1000}' "$LAB_DIR/dnsperf.txt")
		[ "${done_q:-0}" -gt 0 ] || lab_bail "$bin: no query completed"
		awk -F, -v q="$done_q" -v qps="$qps" -v bin="$bin" -v lat="$lat" -v acks="$acks" \
			-v pct="$pct" '
			$3 ~ /context-switches/ { cs = $1 }
			$3 ~ /task-clock/ { cpu = $1 }	# ms
			$3 ~ /sys_enter_/ { n = $3; sub(/.*sys_enter_/, "", n); s[n] = $1 }
			END {
				printf "%s: %d answered, %.0f q/s, latency avg %s ms (p50 / p99 %s); per query:" \
					" cpu %.1f us, cs %.3f, epoll_wait %.3f, recvmmsg %.3f, sendmmsg %.3f," \
					" recvmsg %.3f, sendmsg %.3f, sendto %.3f," \
					" read %.3f, write %.3f, sched_yield %.3f, setsockopt %.3f, pure ACKs %.3f\n",
					bin, q, qps, lat, pct, cpu * 1000 / q, cs / q,
					s["epoll_wait"] / q, s["recvmmsg"] / q, s["sendmmsg"] / q,
					s["recvmsg"] / q, s["sendmsg"] / q, s["sendto"] / q,
					s["read"] / q, s["write"] / q, s["sched_yield"] / q, s["setsockopt"] / q,
					acks / q
			}' "$LAB_DIR/perf.txt"
	done
done
lab_finish
