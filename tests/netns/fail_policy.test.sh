#!/bin/bash
# fail_policy.test.sh - what happens to DNS while dotgw is not serving, in both modes.
#   --fail open (default): the table belongs to the dotgw process (NFT_TABLE_F_OWNER), so the
#     kernel deletes it when the process dies, even by SIGKILL: DNS passes in plaintext (here:
#     the decoy answers).
#   --fail closed: the table stays after SIGKILL and after SIGTERM and drops captured DNS
#     (nothing reaches the decoy, no answer) until dotgw runs again or
#     `dotgw --remove-rules` removes it.
#
#   client --- gw-c [gateway: dotgw] gw-u --- upstream 203.0.113.2 (DoT @853, "203.0.113.80")
#                                    gw-d --- decoy 192.0.2.53 (plain @53, "192.0.2.66")
#
# Usage: fail_policy.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"
lab_setup

# ask WHERE NS PROTO: one A query for www.example.test to the decoy address, short timeout
ask()
{
	local opt=+notcp
	[ "$3" = TCP ] && opt=+tcp
	lab_dig "$2" @"$LAB_DECOY4" www.example.test A "$opt" +time=1 +tries=1
}

expect_served()
{
	ask "$@"
	lab_check_eq "$4: $1 $3 query answered by the upstream" \
		"NOERROR $LAB_UP_A" "$(lab_dig_status) $(lab_dig_rdata A | paste -sd, -)"
}

expect_plaintext()
{
	ask "$@"
	lab_check_eq "$4: $1 $3 query passes in plaintext (the decoy answers)" \
		"NOERROR $LAB_DECOY_A" "$(lab_dig_status) $(lab_dig_rdata A | paste -sd, -)"
}

expect_blocked()
{
	local before
	before=$(lab_decoy_count)
	ask "$@"
	lab_check_eq "$4: $1 $3 query gets no answer" "" "$(lab_dig_status)"
	lab_check_eq "$4: $1 $3 query did not reach the decoy" "$before" "$(lab_decoy_count)"
}

for mode in tproxy nfqueue; do
	args=("${LAB_DOTGW_ARGS[@]}" --mode "$mode" --scope both --interface "$LAB_GW_IF_CLIENT")
	[ "$mode" = nfqueue ] && args+=(--queues 1)

	lab_log "$mode, fail open: SIGKILL lets DNS pass"
	lab_decoy_reset
	lab_start_dotgw "${args[@]}" || lab_finish
	expect_served client "$NS_CLIENT" UDP "$mode open"
	expect_served host "$NS_GW" UDP "$mode open"
	lab_check_eq "$mode open: nothing reached the decoy while serving" 0 "$(lab_decoy_count)"
	lab_stop_dotgw KILL
	lab_check_eq "$mode open: SIGKILL (status 137)" 137 "$?"
	lab_ok "$mode open: the kernel deleted the owned table with the process" \
		sh -c "! ip netns exec '$NS_GW' nft list table inet dotgw >/dev/null 2>&1"
	for proto in UDP TCP; do
		expect_plaintext client "$NS_CLIENT" "$proto" "$mode open, killed"
		expect_plaintext host "$NS_GW" "$proto" "$mode open, killed"
	done

	lab_log "$mode, fail closed: SIGKILL, restart, SIGTERM, --remove-rules"
	lab_decoy_reset
	lab_start_dotgw "${args[@]}" --fail closed || lab_finish
	expect_served client "$NS_CLIENT" UDP "$mode closed"
	expect_served host "$NS_GW" TCP "$mode closed"
	lab_stop_dotgw KILL
	lab_check_eq "$mode closed: SIGKILL (status 137)" 137 "$?"
	lab_ok "$mode closed: the table stays after SIGKILL" lab_dotgw_table_exists
	for proto in UDP TCP; do
		expect_blocked client "$NS_CLIENT" "$proto" "$mode closed, killed"
		expect_blocked host "$NS_GW" "$proto" "$mode closed, killed"
	done
	lab_check_eq "$mode closed, killed: the decoy saw nothing" 0 "$(lab_decoy_count)"
	rules=$(lab_dotgw_rule_count)
	lab_start_dotgw "${args[@]}" --fail closed || lab_finish
	expect_served client "$NS_CLIENT" UDP "$mode closed, restarted"
	expect_served host "$NS_GW" UDP "$mode closed, restarted"
	lab_check_eq "$mode closed, restarted: same rules, no duplicates" "$rules" \
		"$(lab_dotgw_rule_count)"
	lab_stop_dotgw
	lab_check_eq "$mode closed: SIGTERM exits 0" 0 "$?"
	lab_ok "$mode closed: SIGTERM warns that DNS stays blocked" grep -q 'fail closed:' "$DOTGW_LOG"
	lab_ok "$mode closed: the table stays after SIGTERM" lab_dotgw_table_exists
	expect_blocked client "$NS_CLIENT" UDP "$mode closed, stopped"
	expect_blocked host "$NS_GW" TCP "$mode closed, stopped"
	lab_run "$NS_GW" "$DOTGW" --remove-rules
	lab_check_eq "$mode closed: dotgw --remove-rules exits 0" 0 "$LAB_RC"
	lab_ok "$mode closed: --remove-rules removed the table" \
		sh -c "! ip netns exec '$NS_GW' nft list table inet dotgw >/dev/null 2>&1"
	lab_check_eq "$mode closed: --remove-rules removed the fwmark rules" 0 \
		"$(ip netns exec "$NS_GW" ip rule show | grep -c fwmark)"
	expect_plaintext client "$NS_CLIENT" UDP "$mode closed, removed"
	expect_plaintext host "$NS_GW" UDP "$mode closed, removed"
done
lab_finish
