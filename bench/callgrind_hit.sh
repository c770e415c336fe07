#!/bin/bash
# bench/callgrind_hit.sh - user-space instructions per cache-hit query of one or more dotgw
# binaries, counted by callgrind (deterministic, unlike timings on a shared VM). In a lab of
# tests/netns/lib.sh: dotgw --mode tproxy under valgrind --tool=callgrind, dnsperf from the
# client asking www.example.test A N1 and then N2 times (one miss, then hits); the difference
# of the two totals over N2 - N1 is the cost of one hit, start-up and the miss cancelling out.
# Counts every thread of the process and its libraries, not the kernel.
#
# Usage: sudo bench/callgrind_hit.sh DOTGW [DOTGW...]    (N1, N2: env, default 1000, 5000)
# With MISS=1, every query asks a name of its own: the cost of a cache miss (TLS included).
# With KEEP=DIR, the callgrind files stay there as DIR/<i>-<N>.out (i: the binary's place in
# the list), for callgrind_annotate. LOG_LEVEL: dotgw's --log-level (default info, as in
# bench/run.sh; until 2026-12-04 it was the lab's debug, whose per-query line cost ~11,000
# instructions per miss).

# shellcheck source=../tests/netns/lib.sh
. "$(dirname "$0")/../tests/netns/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" valgrind dnsperf
lab_require_dotgw "${1:-}"
N1=${N1:-1000}
N2=${N2:-5000}
lab_setup
for n in "$N1" "$N2"; do
	if [ "${MISS:-0}" = 1 ]; then
		for ((i = 0; i < n; i++)); do echo "q$i.example.test A"; done
	else
		for ((i = 0; i < n; i++)); do echo "www.example.test A"; done
	fi >"$LAB_DIR/q$n.txt"
done
nbin=0
for bin in "$@"; do
	nbin=$((nbin + 1))
	total=()
	for n in "$N1" "$N2"; do
		out="$LAB_DIR/callgrind-$n.out"
		log="$LAB_DIR/callgrind-$n.log"
		# --user root: callgrind writes its file at exit, after the daemon's drop otherwise
		lab_bg "$NS_GW" "$log" valgrind --tool=callgrind --callgrind-out-file="$out" \
			--vgdb=no "$bin" "${LAB_DOTGW_ARGS[@]}" --mode tproxy --scope gateway \
			--interface "$LAB_GW_IF_CLIENT" --timeout 10000 --stall-timeout 10000 --user root \
			--log-level "${LOG_LEVEL:-info}"
		job=$LAB_BG_PID
		pid=$(lab_bg_cmd_pid "$job")
		LAB_WAIT_PID=$job lab_wait_until 600 grep -qw ready "$log" || lab_bail "$bin: not ready"
		lab_in "$NS_CLIENT" dnsperf -s "$LAB_DECOY4" -d "$LAB_DIR/q$n.txt" -n 1 -c 1 -q 20 \
			-t 10 >"$LAB_DIR/dnsperf.txt" 2>&1
		grep -q "Queries completed: *$n " "$LAB_DIR/dnsperf.txt" ||
			lab_bail "$bin: not every query was answered"
		kill -TERM "$pid"
		for ((k = 0; k < 300; k++)); do
			lab_pid_alive "$job" || break
			lab_sleep 0.1
		done
		wait "$job" 2>/dev/null
		lab_bg_forget "$job"
		total+=("$(awk '/^summary:/ {print $2}' "$out")")
		[ -n "${KEEP:-}" ] && cp "$out" "$KEEP/$nbin-$n.out"
	done
	echo "$bin: ${total[0]} instructions for $N1 queries, ${total[1]} for $N2:" \
		"$(((total[1] - total[0]) / (N2 - N1))) per cache $([ "${MISS:-0}" = 1 ] && echo miss || echo hit)"
done
