#!/bin/bash
# non_recursive.test.sh - queries that are not a stub's (RD=0, CH class, NOTIFY): by default
# (--non-recursive forward) the upstream answers them like any other, and the server they were
# sent to sees nothing; with --non-recursive pass (nfqueue mode) their UDP packets reach that
# server untouched, while a stub's queries are still answered over DoT; a client in a policy
# group is never passed (its --deny rules hold for RD=0 too). The pass is dotgw's
# verdict, so --fail closed still holds: killed, dotgw lets nothing pass. In tproxy mode the
# option is refused at start.
#
#   client --- gw-c [gateway: dotgw --mode nfqueue] gw-u --- upstream 203.0.113.2 (DoT @853)
#                                                   gw-d --- decoy 192.0.2.53 (plain @53: the
#                                                            "authoritative" the client asks)
#
# Usage: non_recursive.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"
lab_setup
# a second client, in a policy group
CLIENT2=198.51.100.3
ip -n "$NS_CLIENT" addr add "$CLIENT2/24" dev "$LAB_IF_CLIENT"

ARGS=("${LAB_DOTGW_ARGS[@]}" --mode nfqueue --scope gateway --interface "$LAB_GW_IF_CLIENT")

# summary DESC EXPECTED DIG-ARGS...: ask the decoy's address from the client.
expect()
{
	local desc=$1 want=$2
	shift 2
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A +tries=1 "$@"
	lab_check_eq "$desc" "$want" "$(lab_dig_summary A)"
}

lab_log "default: forward (the upstream answers RD=0 from its cache)"
lab_start_dotgw "${ARGS[@]}" || lab_finish
expect "stub query: the upstream's answer" "NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)"
expect "RD=0: the upstream's answer, from its cache" \
	"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" +norecurse
lab_check_eq "forward: nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_stop_dotgw
lab_check_eq "forward: dotgw exits 0 on SIGTERM" 0 "$?"

lab_log "--non-recursive pass --fail closed"
lab_start_dotgw "${ARGS[@]}" --non-recursive pass --fail closed \
	--group kids="$CLIENT2" --deny kids:blocked.test=192.0.2.99 || lab_finish
expect "pass: a stub query still gets the upstream's answer" \
	"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)"
lab_check_eq "pass: the stub query did not reach the decoy" 0 "$(lab_decoy_count)"
expect "pass: RD=0 gets the decoy's own answer" \
	"NOERROR $LAB_DECOY_A from $LAB_DECOY4#53 (UDP)" +norecurse
lab_check_num "pass: the RD=0 query reached the decoy" "$(lab_decoy_count)" -ge 1
lab_decoy_reset
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" version.bind TXT -c CH +tries=1
lab_check_eq "pass: CH version.bind is answered" NOERROR "$(lab_dig_status)"
lab_check_num "pass: CH version.bind reached the decoy" "$(lab_decoy_count)" -ge 1
lab_decoy_reset
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" example.test SOA +opcode=notify +norecurse +tries=1
lab_check_num "pass: NOTIFY reached the decoy" "$(lab_decoy_count)" -ge 1
lab_decoy_reset
# a client in a policy group is never passed: clearing RD does not get past its rules
lab_dig "$NS_CLIENT" -b "$CLIENT2" @"$LAB_DECOY4" www.blocked.test A +norecurse +tries=1
lab_check_eq "pass: a group's client, RD=0 for a denied name: the policy's sinkhole" \
	"NOERROR 192.0.2.99 from $LAB_DECOY4#53 (UDP)" "$(lab_dig_summary A)"
expect "pass: a group's client, RD=0 for another name: the upstream's answer" \
	"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" +norecurse -b "$CLIENT2"
lab_check_eq "pass: the group's RD=0 queries did not reach the decoy" 0 "$(lab_decoy_count)"
lab_decoy_reset
# TCP is taken by TPROXY before a query can be read: forwarded, as documented
expect "pass: RD=0 over TCP is forwarded (the upstream's answer)" \
	"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (TCP)" +norecurse +tcp
lab_check_eq "pass: the TCP query did not reach the decoy" 0 "$(lab_decoy_count)"
# a packet let pass has left the queue: the batch drop verdict must not name it alone (the
# kernel would answer ENOENT to each such batch)
lab_check_nomatch "pass: the kernel took every verdict" 'kernel says|verdict:' "$(cat "$DOTGW_LOG")"

lab_stop_dotgw KILL
lab_check_eq "pass, fail closed: SIGKILL (status 137)" 137 "$?"
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A +norecurse +tries=1 +time=2
lab_check_eq "pass, fail closed, killed: RD=0 gets no answer" "" "$(lab_dig_status)"
lab_check_eq "pass, fail closed, killed: the decoy saw nothing" 0 "$(lab_decoy_count)"
lab_run "$NS_GW" "$DOTGW" --remove-rules
lab_check_eq "dotgw --remove-rules exits 0" 0 "$LAB_RC"

lab_log "tproxy mode refuses --non-recursive pass"
lab_run "$NS_GW" "$DOTGW" "${LAB_DOTGW_ARGS[@]}" --non-recursive pass --check-config
lab_check_num "tproxy, pass: refused" "$LAB_RC" -ne 0
lab_check_match "tproxy, pass: the error names the option" '--non-recursive pass: needs --mode nfqueue' \
	"$LAB_OUT"
lab_run "$NS_GW" "$DOTGW" "${LAB_DOTGW_ARGS[@]}" --non-recursive maybe --check-config
lab_check_match "a bad value is named" "--non-recursive: invalid value 'maybe'" "$LAB_OUT"
lab_finish
