#!/bin/bash
# tproxy_matrix.test.sh - dotgw in TPROXY mode captures plain DNS sent to any address and
# answers it through the DoT upstream: from a client behind the gateway (gateway scope) and from
# the gateway itself (host scope), over UDP and TCP, IPv4 and IPv6. --scope and --interface
# limit what is captured.
#
#   client --- gw-c [gateway: dotgw] gw-u --- upstream 203.0.113.2 (DoT @853, "203.0.113.80")
#                                    gw-d --- decoy 192.0.2.53 (plain @53, "192.0.2.66";
#                                             counts every port-53 packet it receives)
#
# Usage: tproxy_matrix.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"
lab_setup

# query WHERE NS SERVER TYPE PROTO: one www.example.test query; prints nothing, sets LAB_OUT.
query()
{
	local opt=+notcp
	[ "$5" = TCP ] && opt=+tcp
	lab_dig "$2" @"$3" www.example.test "$4" "$opt"
}

# expect_upstream WHERE NS SERVER TYPE PROTO: captured, answered with the upstream's data as if
# SERVER had answered, over the same transport.
expect_upstream()
{
	local expect=$LAB_UP_A
	[ "$4" = AAAA ] && expect=$LAB_UP_AAAA
	query "$@"
	lab_check_eq "$1: $5 $4 @$3 is answered by the upstream" \
		"NOERROR $expect from $3#53 ($5)" "$(lab_dig_summary "$4")"
}

# expect_decoy WHERE NS SERVER TYPE PROTO: not captured, the decoy itself answers.
expect_decoy()
{
	local expect=$LAB_DECOY_A
	[ "$4" = AAAA ] && expect=$LAB_DECOY_AAAA
	query "$@"
	lab_check_eq "$1: $5 $4 @$3 is not captured (the decoy answers)" \
		"NOERROR $expect from $3#53 ($5)" "$(lab_dig_summary "$4")"
}

lab_log "sanity, no dotgw: the decoy answers and its counter counts"
expect_decoy client "$NS_CLIENT" "$LAB_DECOY4" A UDP
lab_check_num "no dotgw: the decoy counted the client's query" "$(lab_decoy_count)" -gt 0
expect_decoy gateway "$NS_GW" "$LAB_DECOY6" AAAA TCP
lab_decoy_reset
lab_upstream_reset

lab_log "--scope both: everything is captured"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope both --interface "$LAB_GW_IF_CLIENT" || lab_finish
for proto in UDP TCP; do
	expect_upstream client "$NS_CLIENT" "$LAB_DECOY4" A "$proto"
	expect_upstream client "$NS_CLIENT" "$LAB_DECOY6" AAAA "$proto"
	expect_upstream host "$NS_GW" "$LAB_DECOY4" A "$proto"
	expect_upstream host "$NS_GW" "$LAB_DECOY6" AAAA "$proto"
done
# The family of the transport and of the question are independent.
expect_upstream client "$NS_CLIENT" "$LAB_DECOY6" A UDP
expect_upstream host "$NS_GW" "$LAB_DECOY4" AAAA TCP
lab_check_eq "--scope both: nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_check_num "--scope both: the upstream received the queries" "$(lab_upstream_queries)" -gt 0
lab_stop_dotgw
lab_check_eq "--scope both: dotgw exits 0 on SIGTERM" 0 "$?"

lab_log "--scope gateway: the gateway's own queries are not captured"
lab_decoy_reset
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" || lab_finish
expect_upstream client "$NS_CLIENT" "$LAB_DECOY4" A UDP
expect_upstream client "$NS_CLIENT" "$LAB_DECOY6" AAAA TCP
lab_check_eq "--scope gateway: the client's queries did not reach the decoy" 0 "$(lab_decoy_count)"
expect_decoy host "$NS_GW" "$LAB_DECOY4" A UDP
expect_decoy host "$NS_GW" "$LAB_DECOY6" AAAA UDP
expect_decoy host "$NS_GW" "$LAB_DECOY4" A TCP
lab_check_num "--scope gateway: the gateway's own queries reached the decoy" \
	"$(lab_decoy_count)" -gt 0
lab_stop_dotgw
lab_check_eq "--scope gateway: dotgw exits 0 on SIGTERM" 0 "$?"

lab_log "--scope gateway --interface $LAB_GW_IF_CLIENT: only what arrives there is captured"
lab_decoy_reset
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" ||
	lab_finish
expect_upstream client "$NS_CLIENT" "$LAB_DECOY4" A UDP
expect_upstream client "$NS_CLIENT" "$LAB_DECOY6" AAAA UDP
expect_upstream client "$NS_CLIENT" "$LAB_DECOY4" A TCP
lab_check_eq "--interface: the client's queries did not reach the decoy" 0 "$(lab_decoy_count)"
# The upstream's namespace is routed through the gateway too, but via gw-u.
expect_decoy "upstream host (via $LAB_GW_IF_UP)" "$NS_UP" "$LAB_DECOY4" A UDP
expect_decoy host "$NS_GW" "$LAB_DECOY4" A UDP
lab_stop_dotgw
lab_check_eq "--interface: dotgw exits 0 on SIGTERM" 0 "$?"

lab_finish
