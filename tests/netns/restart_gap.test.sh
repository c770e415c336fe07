#!/bin/bash
# restart_gap.test.sh - what restarts and reloads cost, in both fail modes: dnsperf sends
# queries at a steady rate from the client (UDP, to the decoy's address) while dotgw is
# restarted (SIGTERM, then a new start) 10 times, then reloaded (SIGHUP) 10 times. The decoy
# counts what leaked in plaintext; dnsperf counts what went unanswered. Printed:
#   RESULT fail=MODE phase=restart|reload sent=N answered=N lost=N decoy=N
# Checked: with --fail closed nothing ever reaches the decoy (restarts included: the table
# stays, and `ip monitor rule` sees the fwmark rule never deleted: a new run adds its rule
# before it deletes stale ones); reloads leak and lose
# nothing in either mode. With --fail open a restart lets DNS pass in plaintext between the
# old process's exit and the new one's table (the decoy's count; README states it).
#
#   client (dnsperf) --- gw-c [gateway: dotgw --scope gateway --interface gw-c] gw-u --- upstream
#                             [ restarted / reloaded 10 times each            ] gw-d --- decoy
#
# Usage: restart_gap.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf
lab_require_dotgw "${1:-}"
lab_setup

RATE=1000
ROUNDS=10
QUERIES="$LAB_DIR/queries.txt"
echo "www.example.test A" >"$QUERIES"

# perf_start: dnsperf in the client, at RATE queries a second, for at most 60 s.
perf_start()
{
	lab_bg "$NS_CLIENT" "$LAB_DIR/dnsperf.out" dnsperf -s "$LAB_DECOY4" -d "$QUERIES" \
		-Q "$RATE" -l 60 -t 2 -q 200
	PERF_JOB=$LAB_BG_PID
	lab_sleep 0.5
}

# perf_stop PHASE FAIL: let the last queries finish, interrupt dnsperf, print and keep the
# figures in SENT, ANSWERED, LOST, DECOY.
perf_stop()
{
	lab_sleep 2.5
	lab_ns_kill "$NS_CLIENT" dnsperf INT
	wait "$PERF_JOB" 2>/dev/null
	lab_bg_forget "$PERF_JOB"
	SENT=$(sed -n 's/^ *Queries sent: *\([0-9]*\).*/\1/p' "$LAB_DIR/dnsperf.out")
	ANSWERED=$(sed -n 's/^ *Queries completed: *\([0-9]*\).*/\1/p' "$LAB_DIR/dnsperf.out")
	LOST=$(sed -n 's/^ *Queries lost: *\([0-9]*\).*/\1/p' "$LAB_DIR/dnsperf.out")
	DECOY=$(lab_decoy_count)
	printf 'RESULT fail=%s phase=%s sent=%s answered=%s lost=%s decoy=%s\n' "$2" "$1" \
		"${SENT:-?}" "${ANSWERED:-?}" "${LOST:-?}" "$DECOY"
	lab_check_num "fail $2, $1: dnsperf ran (queries sent)" "${SENT:-0}" -gt "$((RATE / 2))"
}

lab_log "a rule an earlier run left at another priority is replaced"
ip -n "$NS_GW" rule add fwmark 0xd07 lookup 853 priority 900 &&
	ip -n "$NS_GW" -6 rule add fwmark 0xd07 lookup 853 priority 900 ||
	lab_bail "adding stale rules"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" ||
	lab_finish
for v in 4 6; do
	lab_check_eq "IPv$v: one fwmark rule, at priority 853" "853:" \
		"$(ip -n "$NS_GW" -"$v" rule show | awk '/fwmark 0xd07/ { print $1 }' | paste -sd' ')"
done
lab_stop_dotgw

for fail in closed open; do
	args=("${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" --fail "$fail"
		--log-level info)
	lab_log "fail $fail: $ROUNDS restarts under $RATE queries/s"
	lab_start_dotgw "${args[@]}" || lab_finish
	lab_decoy_reset
	# every change to the policy rules, seen as it happens
	lab_bg "$NS_GW" "$LAB_DIR/rules-$fail.log" ip monitor rule
	MON_JOB=$LAB_BG_PID
	perf_start
	for ((i = 1; i <= ROUNDS; i++)); do
		lab_stop_dotgw || lab_fail "fail $fail: restart $i: dotgw exits 0"
		lab_start_dotgw "${args[@]}" || lab_finish
	done
	perf_stop restart "$fail"
	lab_bg_stop "$MON_JOB"
	if [ "$fail" = closed ]; then
		lab_check_eq "fail closed, restarts: nothing reached the decoy" 0 "$DECOY"
		# The window in which the rule was missing is too short for a query to hit
		# reliably; the rule's deletion itself is what must not happen.
		lab_check_eq "fail closed, restarts: the fwmark rule was never deleted" "" \
			"$(grep -i '^Deleted.*fwmark 0xd07' "$LAB_DIR/rules-$fail.log" | sort | uniq -c)"
	else
		lab_log "fail open: about $((DECOY * 1000 / RATE / ROUNDS)) ms of plaintext per restart" \
			"($DECOY queries leaked at $RATE/s over $ROUNDS restarts)"
	fi

	lab_log "fail $fail: $ROUNDS reloads under $RATE queries/s"
	lab_decoy_reset
	perf_start
	for ((i = 1; i <= ROUNDS; i++)); do
		n=$(grep -c reloaded "$DOTGW_LOG")
		kill -HUP "$DOTGW_PID"
		if ! lab_wait_until 100 sh -c "[ \$(grep -c reloaded '$DOTGW_LOG') -gt $n ]"; then
			lab_fail "fail $fail: reload $i logged 'reloaded'"
		fi
	done
	perf_stop reload "$fail"
	lab_check_eq "fail $fail, reloads: nothing reached the decoy" 0 "$DECOY"
	lab_check_eq "fail $fail, reloads: no query went unanswered" 0 "${LOST:-?}"
	lab_stop_dotgw
	lab_check_eq "fail $fail: dotgw exits 0" 0 "$?"
	[ "$fail" = closed ] && lab_run "$NS_GW" "$DOTGW" --remove-rules
done
lab_finish
