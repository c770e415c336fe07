#!/bin/bash
# handover.test.sh - zero-gap handover between overlapping instances (handover.h): under a
# steady dnsperf load (UDP, 8 source ports, spread over both instances' listeners in tproxy
# mode) and a series of kdig TCP queries, instance B starts while A serves, B's /readyz is
# awaited, A gets SIGTERM; then the same from B to C. For --mode
# tproxy and nfqueue, --fail open and closed. Checked for each: B starts beside A (the
# listeners and the metrics port join SO_REUSEPORT groups); A exits 0 and its exit leaves
# the newer table and rules in place; no query is lost or answered SERVFAIL; nothing reaches
# the decoy in plaintext; the last instance keeps answering. Then (tproxy, fail open) an old
# instance SIGKILLed while the new one runs: the new one's table stays and it answers.
#
#   client (dnsperf, kdig) --- gw-c [gateway: dotgw A, B, C overlapping] gw-u --- upstream
#                                                                        gw-d --- decoy
#
# Usage: handover.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf curl
lab_require_dotgw "${1:-}"
lab_setup

RATE=300
SECONDS_LOAD=7
TCP_QUERIES=20
METRICS=127.0.0.1:9853
QUERIES="$LAB_DIR/queries.txt"
echo "www.example.test A" >"$QUERIES"

# inst_start NAME ARGS...: start a dotgw called NAME; wait for "ready" in its log (10 s).
# INST_JOB[NAME] is its lab_bg job.
declare -A INST_JOB
inst_start()
{
	local name=$1 log="$LAB_DIR/dotgw-$1.log" i
	shift
	# emptied here: lab_bg's shell may truncate it only after the first look below, which
	# would then find the "ready" of an earlier instance of that name
	[ -s "$log" ] && cat "$log" >>"$LAB_DIR/dotgw-earlier.log"
	: >"$log"
	lab_bg "$NS_GW" "$log" "$DOTGW" "$@"
	INST_JOB[$name]=$LAB_BG_PID
	for ((i = 0; i < 100; i++)); do
		grep -qw ready "$log" && return 0
		lab_pid_alive "${INST_JOB[$name]}" || break
		lab_sleep 0.1
	done
	lab_fail "instance $name started beside the running one (its log: $log)"
	lab_indent <"$log"
	return 1
}

# inst_stop NAME [SIGNAL]: signal it, wait, return its exit status.
inst_stop()
{
	lab_bg_stop "${INST_JOB[$1]}" "${2:-TERM}"
}

# readyz: /readyz says 200 (the instance that answers: both listen on the port)
# shellcheck disable=SC2317 # called indirectly
readyz()
{
	[ "$(ip netns exec "$NS_GW" timeout 3 curl -s -o /dev/null -w '%{http_code}' \
		"http://$METRICS/readyz")" = 200 ]
}

# tables: "name:rules name:rules" of the dotgw tables in the gateway
tables()
{
	local t
	for t in $(ip netns exec "$NS_GW" nft list tables inet | awk '/dotgw/ { print $3 }'); do
		printf '%s:%s ' "$t" "$(LAB_DOTGW_TABLE=$t lab_dotgw_rule_count)"
	done
}

# fwmark_rules: the priorities of the IPv4 and IPv6 policy rules of the capture mark
fwmark_rules()
{
	local v
	for v in 4 6; do
		ip -n "$NS_GW" -"$v" rule show | awk '/fwmark 0xd07/ { print $1 }'
	done | paste -sd' '
}

# tcp_queries: TCP_QUERIES kdig queries over TCP, 0.25 s apart; prints the failed ones.
tcp_queries()
{
	local i out
	for ((i = 0; i < TCP_QUERIES; i++)); do
		out=$(ip netns exec "$NS_CLIENT" timeout 5 kdig +tcp +time=3 +retry=0 \
			@"$LAB_DECOY4" www.example.test A 2>&1)
		[[ "$out" == *"status: NOERROR"* && "$out" == *"$LAB_UP_A"* ]] ||
			echo "TCP query $i: $out"
		sleep 0.25
	done
}

for mode in tproxy nfqueue; do
	for fail in open closed; do
		what="$mode, fail $fail"
		args=(--mode "$mode" --upstream "$LAB_UP4#$LAB_AUTH_NAME" --ca-file "$LAB_CA"
			--scope gateway --interface "$LAB_GW_IF_CLIENT" --fail "$fail"
			--metrics "$METRICS" --log-level info)
		lab_log "$what: handovers A -> B -> C under $RATE queries/s"
		inst_start A "${args[@]}" || lab_finish
		lab_decoy_reset
		lab_bg "$NS_CLIENT" "$LAB_DIR/dnsperf.out" dnsperf -s "$LAB_DECOY4" -d "$QUERIES" \
			-Q "$RATE" -l "$SECONDS_LOAD" -t 2 -q 100 -c 8
		perf=$LAB_BG_PID
		tcp_queries >"$LAB_DIR/tcp.out" 2>&1 &
		tcp=$!
		lab_sleep 1
		prev=A
		for next in B C; do
			inst_start "$next" "${args[@]}" || lab_finish
			lab_wait_until 50 readyz || lab_fail "$what: /readyz 200 with $next running"
			inst_stop "$prev"
			lab_check_eq "$what: $prev exits 0 after handing over to $next" 0 "$?"
			t=$(tables)
			lab_check_match "$what: $prev's exit left $next's table with its rules" \
				'^dotgw(-1)?:[1-9][0-9]* $' "$t"
			lab_check_eq "$what: the fwmark rules stay after $prev's exit" "853: 853:" \
				"$(fwmark_rules)"
			lab_check_match "$what: $next logged no error" '^$' \
				"$(grep -E '^error|Sanitizer|runtime error' "$LAB_DIR/dotgw-$next.log")"
			prev=$next
		done
		wait "$perf"
		lab_bg_forget "$perf"
		wait "$tcp"
		lost=$(sed -n 's/^ *Queries lost: *\([0-9]*\).*/\1/p' "$LAB_DIR/dnsperf.out")
		sent=$(sed -n 's/^ *Queries sent: *\([0-9]*\).*/\1/p' "$LAB_DIR/dnsperf.out")
		codes=$(sed -n 's/^ *Response codes: *//p' "$LAB_DIR/dnsperf.out")
		decoy=$(lab_decoy_count)
		printf 'RESULT mode=%s fail=%s sent=%s lost=%s codes=%s decoy=%s\n' "$mode" "$fail" \
			"${sent:-?}" "${lost:-?}" "$codes" "$decoy"
		lab_check_num "$what: dnsperf ran" "${sent:-0}" -gt "$((RATE * SECONDS_LOAD / 2))"
		lab_check_eq "$what: no UDP query lost" 0 "${lost:-?}"
		lab_check_match "$what: every answer NOERROR" '^NOERROR [0-9]+ \(100\.00%\)$' "$codes"
		lab_check_eq "$what: no TCP query failed" "" "$(cat "$LAB_DIR/tcp.out")"
		lab_check_eq "$what: nothing reached the decoy" 0 "$decoy"
		lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A
		lab_check_eq "$what: C answers" "NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" \
			"$(lab_dig_summary A)"
		if [ "$mode/$fail" = tproxy/open ]; then
			lab_log "$what: an old instance SIGKILLed while the new one runs"
			inst_start D "${args[@]}" || lab_finish
			inst_stop C KILL
			lab_check_match "$what: C's death left D's table" '^dotgw(-1)?:[1-9][0-9]* $' \
				"$(tables)"
			lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A
			lab_check_eq "$what: D answers" \
				"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" "$(lab_dig_summary A)"
			prev=D
		fi
		inst_stop "$prev"
		lab_check_eq "$what: the last instance exits 0" 0 "$?"
		lab_check_eq "$what: no instance logged an error" "" \
			"$(cat "$LAB_DIR"/dotgw-*.log | grep -E '^error|Sanitizer|runtime error')"
		[ "$fail" = closed ] && lab_run "$NS_GW" "$DOTGW" --remove-rules
		lab_check_eq "$what: no table left" "" "$(tables)"
	done
done

# --handover-wait: SIGTERM reaches P before its successor Q has even started (a pod taken for
# ready on the old dotgw's /readyz); P keeps serving until Q captures, then hands over. Q, in
# slot 1 (table dotgw-1), then reloads its configuration without a restart warning.
what="tproxy, fail open, --handover-wait"
args=(--mode tproxy --upstream "$LAB_UP4#$LAB_AUTH_NAME" --ca-file "$LAB_CA" --scope gateway
	--interface "$LAB_GW_IF_CLIENT" --fail open --log-level info)
lab_log "$what: SIGTERM first, the successor after"
inst_start P "${args[@]}" --handover-wait 20 || lab_finish
lab_decoy_reset
lab_bg "$NS_CLIENT" "$LAB_DIR/dnsperf.out" dnsperf -s "$LAB_DECOY4" -d "$QUERIES" -Q "$RATE" \
	-l 4 -t 2 -q 100 -c 8
perf=$LAB_BG_PID
lab_sleep 0.5
pid=$(lab_bg_cmd_pid "${INST_JOB[P]}")
kill -TERM "$pid"
lab_wait_until 50 grep -q 'waiting up to 20 s' "$LAB_DIR/dotgw-P.log" ||
	lab_fail "$what: P waits for a successor"
lab_sleep 1
inst_start Q "${args[@]}" || lab_finish
inst_stop P
lab_check_eq "$what: P exits 0" 0 "$?"
lab_check_match "$what: P handed over" 'handing over' "$(cat "$LAB_DIR/dotgw-P.log")"
wait "$perf"
lab_bg_forget "$perf"
lost=$(sed -n 's/^ *Queries lost: *\([0-9]*\).*/\1/p' "$LAB_DIR/dnsperf.out")
lab_check_eq "$what: no UDP query lost" 0 "${lost:-?}"
lab_check_eq "$what: nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_check_match "$what: Q's table" '^dotgw(-1)?:[1-9][0-9]* $' "$(tables)"
kill -HUP "$(lab_bg_cmd_pid "${INST_JOB[Q]}")"
lab_wait_until 50 grep -q reloaded "$LAB_DIR/dotgw-Q.log" || lab_fail "$what: Q reloads"
lab_check_eq "$what: Q's reload keeps its slot without a warning" "" \
	"$(grep 'needs a restart' "$LAB_DIR/dotgw-Q.log")"
lab_check_match "$what: Q's table after the reload" '^dotgw(-1)?:[1-9][0-9]* $' "$(tables)"
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A
lab_check_eq "$what: Q answers" "NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" \
	"$(lab_dig_summary A)"
inst_stop Q
lab_check_eq "$what: Q exits 0" 0 "$?"
lab_check_eq "$what: no table left" "" "$(tables)"
lab_finish
