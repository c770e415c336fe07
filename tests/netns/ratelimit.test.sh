#!/bin/bash
# ratelimit.test.sh - per-client rate limiting: a client flooding queries gets its rate and
# REFUSED for the rest (or silence with --rate-limit-action drop), while another client on the
# same network is answered in full.
#
#   client 198.51.100.2 (dnsperf, flooding) --.
#   client 198.51.100.3 (dig, a few queries) -+- gw-c [gateway: dotgw --rate-limit 50] --- upstream
#
# Usage: ratelimit.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf
lab_require_dotgw "${1:-}"
lab_setup

OTHER=198.51.100.3
ip -n "$NS_CLIENT" addr add "$OTHER/24" dev "$(ip -n "$NS_CLIENT" -o -4 addr show |
	awk '/198\.51\.100\.2\// { print $2; exit }')"
for ((i = 0; i < 3000; i++)); do
	echo "flood$i.bench.test A"
done >"$LAB_DIR/queries.txt"

# dnsperf_field NAME: a number from the last dnsperf output
dnsperf_field()
{
	printf '%s\n' "$LAB_OUT" | sed -n "s/^ *$1: *\([0-9]*\).*/\1/p" | head -n 1
}

for action in refused drop; do
	lab_log "--rate-limit 50 --rate-burst 50 --rate-limit-action $action"
	lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --log-level info --scope gateway --interface "$LAB_GW_IF_CLIENT" --cache-size 0 \
		--rate-limit 50 --rate-burst 50 --rate-limit-action "$action" || lab_finish
	# about 3 s at 1000 q/s from one client, bounded in count and time
	lab_bg "$NS_CLIENT" "$LAB_DIR/dnsperf.out" dnsperf -s "$LAB_DECOY4" -a 198.51.100.2 \
		-d "$LAB_DIR/queries.txt" -n 1 -Q 1000 -q 3000 -l 10 -t 2
	flood=$LAB_BG_PID
	lab_sleep 1
	other_ok=0
	for ((i = 0; i < 10; i++)); do
		lab_dig "$NS_CLIENT" @"$LAB_DECOY4" -b "$OTHER" "other$i.bench.test" A +tries=1
		[ "$(lab_dig_status)" = NOERROR ] && other_ok=$((other_ok + 1))
	done
	lab_check_eq "$action: the other client got all 10 answers during the flood" 10 "$other_ok"
	wait "$flood"
	LAB_OUT=$(cat "$LAB_DIR/dnsperf.out")
	sent=$(dnsperf_field "Queries sent")
	noerror=$(printf '%s\n' "$LAB_OUT" | sed -n 's/.*NOERROR \([0-9]*\).*/\1/p' | head -n 1)
	refused=$(printf '%s\n' "$LAB_OUT" | sed -n 's/.*REFUSED \([0-9]*\).*/\1/p' | head -n 1)
	lab_check_num "$action: dnsperf sent the flood ($sent)" "${sent:-0}" -ge 2500
	# 50 at once, then 50/s for at most ~4 s of flood: well under 400 answers
	lab_check_num "$action: the flooding client got at most its rate (${noerror:-0} answers)" \
		"${noerror:-0}" -le 400
	lab_check_num "$action: ...and more than its burst" "${noerror:-0}" -ge 50
	if [ "$action" = refused ]; then
		lab_check_num "refused: the rest was REFUSED (${refused:-0})" "${refused:-0}" -ge \
			$((sent - 400))
	else
		lab_check_eq "drop: nothing was REFUSED" "" "${refused:-}"
	fi
	lab_stop_dotgw
	lab_check_eq "$action: dotgw exits 0" 0 "$?"
	lab_check_num "$action: rate_limited counted" "$(lab_dotgw_stat rate_limited)" -ge \
		$((sent - 400))
done
lab_check_eq "nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_finish
