#!/bin/bash
# truncation.test.sh - an answer too big for the client's UDP buffer comes back truncated (TC
# set, no answers) over UDP, and whole over TCP; the client's retry over TCP gets all of it.
# big.example.test has 40 TXT records of 60 characters (about 2900 octets).
#
#   client --- gw-c [gateway: dotgw --scope both] gw-u --- upstream 203.0.113.2 (DoT @853)
#                                                 gw-d --- decoy 192.0.2.53 (must see nothing)
#
# Usage: truncation.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"
lab_setup

lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope both --interface "$LAB_GW_IF_CLIENT" || lab_finish

for server in "$LAB_DECOY4" "$LAB_DECOY6"; do
	lab_log "queries to @$server"

	lab_dig "$NS_CLIENT" @"$server" www.example.test A
	lab_check_eq "@$server: a small answer arrives over UDP" \
		"NOERROR $LAB_UP_A from $server#53 (UDP)" "$(lab_dig_summary A)"
	lab_notok "@$server: a small answer is not truncated" lab_dig_has_flag tc

	lab_dig "$NS_CLIENT" @"$server" big.example.test TXT +ignore +bufsize=1232
	lab_check_eq "@$server: EDNS 1232, UDP: status NOERROR" NOERROR "$(lab_dig_status)"
	lab_ok "@$server: EDNS 1232, UDP: TC is set" lab_dig_has_flag tc
	lab_check_eq "@$server: EDNS 1232, UDP: no answers" 0 "$(lab_dig_ancount)"

	lab_dig "$NS_CLIENT" @"$server" big.example.test TXT +noedns +ignore
	lab_check_eq "@$server: no EDNS, UDP: status NOERROR" NOERROR "$(lab_dig_status)"
	lab_ok "@$server: no EDNS, UDP: TC is set" lab_dig_has_flag tc
	lab_check_eq "@$server: no EDNS, UDP: no answers" 0 "$(lab_dig_ancount)"

	# Plain dig: truncated over UDP, then retried over TCP.
	lab_dig "$NS_CLIENT" @"$server" big.example.test TXT
	lab_check_match "@$server: dig saw TC and retried over TCP" 'Truncated, retrying in TCP' \
		"$LAB_OUT"
	lab_check_eq "@$server: the retry over TCP is answered" "NOERROR from $server#53 (TCP)" \
		"$(lab_dig_status) from $(lab_dig_server) ($(lab_dig_proto))"
	lab_notok "@$server: the TCP answer is not truncated" lab_dig_has_flag tc
	lab_check_eq "@$server: all $LAB_BIG_TXT_COUNT TXT records arrive" "$LAB_BIG_TXT_COUNT" \
		"$(lab_dig_rdata TXT | grep -c '"big-[0-9][0-9]-')"
	lab_check_eq "@$server: ANSWER count $LAB_BIG_TXT_COUNT" "$LAB_BIG_TXT_COUNT" \
		"$(lab_dig_ancount)"

	lab_dig "$NS_CLIENT" @"$server" big.example.test TXT +tcp
	lab_check_eq "@$server: straight over TCP, all $LAB_BIG_TXT_COUNT TXT records arrive" \
		"$LAB_BIG_TXT_COUNT" "$(lab_dig_rdata TXT | grep -c '"big-[0-9][0-9]-')"
done

lab_check_eq "nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_stop_dotgw
lab_check_eq "dotgw exits 0 on SIGTERM" 0 "$?"

lab_finish
