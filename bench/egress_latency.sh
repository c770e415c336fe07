#!/bin/bash
# bench/egress_latency.sh - what --egress adds to an answer's latency (issue 16: "the answer is
# released only after the kernel has acknowledged the set update"). In a lab of
# tests/netns/lib.sh: the upstream serves N names, each with an AAAA record of its own, so that
# every query adds a new element to the group's set (the worst case: nothing is covered yet).
# dnsperf asks them at RATE q/s from the client, once through dotgw without --egress and once
# with the client in an --egress group; p50 and p99 of dnsperf's per-answer latency, and the
# set's size after the run.
#
# Usage: sudo bench/egress_latency.sh DOTGW   (N: names, default 20000; RATE: q/s, default 2000;
#        MAX: --egress-max, default dotgw's 65536)

# shellcheck source=../tests/netns/lib.sh
. "$(dirname "$0")/../tests/netns/lib.sh"
# shellcheck source=percentiles.sh
. "$(dirname "$0")/percentiles.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf
lab_require_dotgw "${1:-}"
N=${N:-20000}
RATE=${RATE:-2000}
MAX=${MAX:+--egress-max $MAX}
lab_tmpdir
ZONE="$LAB_DIR/lat.test.zone"
{
	echo '$TTL 3600'
	echo 'lat.test. SOA ns.lat.test. host.lat.test. 1 3600 600 86400 300'
	echo 'lat.test. NS ns.lat.test.'
	echo 'ns.lat.test. A 203.0.113.2'
	for ((i = 0; i < N; i++)); do
		printf 'n%d.lat.test. AAAA 2001:db8:f:%x::%x\n' "$i" $((i / 65536)) $((i % 65536))
	done
} >"$ZONE"
chmod 644 "$ZONE"
for ((i = 0; i < N; i++)); do echo "n$i.lat.test AAAA"; done >"$LAB_DIR/queries.txt"
# shellcheck disable=SC2034 # read by lab_start_upstream
LAB_UP_EXTRA_CONF="
	local-zone: \"lat.test.\" transparent
auth-zone:
	name: \"lat.test.\"
	zonefile: \"$ZONE\"
	for-upstream: yes
	for-downstream: no
	fallback-enabled: no"
lab_setup
# the upstream's own cache warm, so both runs see the same upstream
lab_in "$NS_UP" dnsperf -s "$LAB_UP4" -d "$LAB_DIR/queries.txt" -n 1 -Q 20000 -t 5 >/dev/null 2>&1

run()
{
	local label=$1 out pct
	shift
	lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --log-level info --mode tproxy --scope gateway \
		--interface "$LAB_GW_IF_CLIENT" --timeout 5000 --metrics 127.0.0.1:9853 "$@" || lab_bail "$label: no start"
	out=$(lab_in "$NS_CLIENT" dnsperf -s "$LAB_DECOY4" -d "$LAB_DIR/queries.txt" -n 1 \
		-Q "$RATE" -c 4 -t 5 -v 2>&1)
	pct=$(printf '%s\n' "$out" | bench_dnsperf_percentiles)
	printf '%s: %s; p50 %s ms, p99 %s ms' "$label" \
		"$(printf '%s\n' "$out" | grep -E 'Queries completed' | xargs)" "${pct% *}" "${pct#* }"
	if lab_in "$NS_GW" nft list set inet dotgw_egress e0_6 >"$LAB_DIR/set.txt" 2>/dev/null; then
		printf '; set e0_6: %s elements' "$(grep -o '2001:db8:f:' "$LAB_DIR/set.txt" | wc -l)"
	fi
	printf '; dotgw VmHWM %s\n' "$(awk '/VmHWM/ {print $2, $3}' "/proc/$DOTGW_PID/status")"
	# the hold itself, as dotgw timed it: answer ready -> kernel's ACK (cumulative buckets)
	lab_in "$NS_GW" curl -sS http://127.0.0.1:9853/metrics | awk -F'[{}" ]+' '
		/^dotgw_egress_hold_seconds_bucket/ { le[++n] = $5; c[n] = $NF }
		END { if (!n) exit; printf "  hold (answer ready -> ACK), answers with le: ";
			for (i = 1; i <= n; i++) printf "%s%s s %.2f%%", (i > 1 ? ", " : ""), le[i],
				c[n] ? 100 * c[i] / c[n] : 0; printf " of %d\n", c[n] }'

	lab_stop_dotgw
}
run "without --egress"
# shellcheck disable=SC2086 # MAX: empty or two words
run "with --egress" --group "c=$LAB_CLIENT4/32" --egress c $MAX
lab_finish
