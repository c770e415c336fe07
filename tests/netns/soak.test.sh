#!/bin/bash
# soak.test.sh - a steady load through dotgw for DOTGW_SOAK_SECONDS (default 120; 600 for a
# 10-minute run) while the upstream is restarted every 60 s and dotgw reloaded halfway between
# (every 30 s; a run under 2 minutes does both twice, on half its length: bootstrap.sh's 60-s
# runs restart at 30 and 60 s and reload at 15 and 45 s): every query is answered (NOERROR, or
# SERVFAIL while the upstream is down), none is lost, nothing leaks to the decoy, and dotgw's
# RSS and open descriptors stay flat.
#
#   client (dnsperf -Q 300) --- gw-c [gateway: dotgw --config F] gw-u --- upstream (restarted)
#
# Usage: soak.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
SECONDS_TOTAL=${DOTGW_SOAK_SECONDS:-120}
LAB_PROC_TIMEOUT=$((SECONDS_TOTAL + 120))
# the upstream restart's period, a multiple of 10 s (the reload comes halfway through it)
PERIOD=$((SECONDS_TOTAL >= 120 ? 60 : SECONDS_TOTAL / 20 * 10))
[ "$PERIOD" -ge 10 ] || { echo "DOTGW_SOAK_SECONDS=$SECONDS_TOTAL: 20 at least" >&2; exit 2; }
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf
lab_require_dotgw "${1:-}"
lab_setup

RATE=300
COUNT=$((RATE * SECONDS_TOTAL))
awk -v n="$COUNT" 'BEGIN { for (i = 0; i < n; i++) printf "soak%d.bench.test A\n", i }' \
	>"$LAB_DIR/queries.txt"
CONF="$LAB_DIR/dotgw.conf"
printf 'upstream = %s#%s\nca-file = %s\nscope = gateway\ninterface = %s\nlog-level = info\ncache-size = 1M\n' \
	"$LAB_UP4" "$LAB_AUTH_NAME" "$LAB_CA" "$LAB_GW_IF_CLIENT" >"$CONF"
# An ASan build keeps freed memory in a quarantine (256 MiB by default) that fills at the rate
# dotgw frees memory: its RSS would then measure the quarantine, not dotgw (a build with little
# churn per query fills it for minutes, linearly). A small one keeps RSS about dotgw; other
# builds ignore the variable.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1"
lab_start_dotgw --config "$CONF" || lab_finish

# sample: "seconds rss_kib fds" of the daemon
sample()
{
	printf '%s %s %s\n' "$1" "$(awk '/^VmRSS/ { print $2 }' "/proc/$DOTGW_PID/status")" \
		"$(find "/proc/$DOTGW_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)"
}

lab_bg "$NS_CLIENT" "$LAB_DIR/dnsperf.out" dnsperf -s "$LAB_DECOY4" -d "$LAB_DIR/queries.txt" \
	-n 1 -Q "$RATE" -q 500 -l $((SECONDS_TOTAL + 30)) -t 5
load=$LAB_BG_PID
: >"$LAB_DIR/samples.txt"
restarts=0 reloads=0
for ((t = 5; t <= SECONDS_TOTAL; t += 5)); do
	lab_sleep 5
	lab_pid_alive "$DOTGW_PID" || break
	sample "$t" >>"$LAB_DIR/samples.txt"
	if ((t % PERIOD == 0)); then
		# the upstream goes away and comes back
		lab_ns_kill "$NS_UP" unbound
		lab_start_upstream >/dev/null && restarts=$((restarts + 1))
	elif ((t % PERIOD == PERIOD / 2)); then
		# a reload that changes something: the cache size
		sed -i "s/^cache-size = .*/cache-size = $((1 + reloads % 2))M/" "$CONF"
		kill -HUP "$DOTGW_PID" && reloads=$((reloads + 1))
	fi
done
wait "$load"
out=$(cat "$LAB_DIR/dnsperf.out")
sent=$(sed -n 's/^ *Queries sent: *\([0-9]*\).*/\1/p' <<<"$out")
lost=$(sed -n 's/^ *Queries lost: *\([0-9]*\).*/\1/p' <<<"$out")
noerror=$(sed -n 's/.*NOERROR \([0-9]*\).*/\1/p' <<<"$out" | head -n 1)
servfail=$(sed -n 's/.*SERVFAIL \([0-9]*\).*/\1/p' <<<"$out" | head -n 1)
# the baseline after a quarter of the run: caches fill first (and a small ASan quarantine)
WARM=$((SECONDS_TOTAL / 4 > 10 ? SECONDS_TOTAL / 4 : 10))
first=$(awk -v t="$WARM" '$1 >= t { print; exit }' "$LAB_DIR/samples.txt")
last=$(tail -n 1 "$LAB_DIR/samples.txt")
lab_log "soak ${SECONDS_TOTAL}s: sent=$sent noerror=${noerror:-0} servfail=${servfail:-0}" \
	"lost=$lost upstream-restarts=$restarts reloads=$reloads"
lab_log "rss_kib/fds at ${WARM} s: ${first#* }; at the end: ${last#* }"
lab_log "samples (s rss_kib fds): $(tr '\n' ';' <"$LAB_DIR/samples.txt")"
lab_check_num "the load ran ($sent queries)" "${sent:-0}" -ge $((COUNT * 9 / 10))
lab_check_eq "no query lost" 0 "$lost"
lab_check_eq "every query answered NOERROR or SERVFAIL" "$sent" \
	"$((${noerror:-0} + ${servfail:-0}))"
lab_check_num "the upstream was restarted" "$restarts" -ge $((SECONDS_TOTAL / PERIOD))
lab_check_num "dotgw was reloaded" "$reloads" -ge $((SECONDS_TOTAL / PERIOD))
rss0=$(awk '{ print $2 }' <<<"$first") rss1=$(awk '{ print $2 }' <<<"$last")
fd0=$(awk '{ print $3 }' <<<"$first") fd1=$(awk '{ print $3 }' <<<"$last")
# flat: RSS may settle (caches fill, allocator arenas) but not climb with time
lab_check_num "RSS flat: $rss0 KiB at $WARM s, $rss1 KiB at the end" "$rss1" -le \
	$((rss0 + rss0 / 4 + 2048))
lab_check_num "descriptors flat: $fd0 at $WARM s, $fd1 at the end" "$fd1" -le $((fd0 + 4))
lab_check_eq "nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"
lab_finish
