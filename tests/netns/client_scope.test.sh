#!/bin/bash
# client_scope.test.sh - --client limits gateway capture to the given source prefixes: the
# client's listed address is answered over DoT, the same host's other address goes to the
# decoy in plaintext, over UDP and TCP, IPv4 and IPv6; with no --client every source is
# captured; a bad prefix is refused with its name.
#
#   client 198.51.100.2, .3        gw-c [gateway: dotgw --scope gateway    ] gw-u --- upstream
#          2001:db8:100::2, ::3         [       --client 198.51.100.2/32    ]
#                                       [       --client 2001:db8:100::2/128] gw-d --- decoy
#
# Usage: client_scope.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"
lab_setup

OTHER4=198.51.100.3
OTHER6=2001:db8:100::3
if ! ip -n "$NS_CLIENT" addr add "$OTHER4/24" dev "$LAB_IF_CLIENT" ||
	! ip -n "$NS_CLIENT" addr add "$OTHER6/64" dev "$LAB_IF_CLIENT" nodad; then
	lab_bail "adding the client's second addresses"
fi

# ask SRC DECOY TYPE [DIG-ARGS]: a query from SRC to DECOY, summed up by lab_dig_summary.
ask()
{
	local src=$1 dst=$2 type=$3
	shift 3
	lab_dig "$NS_CLIENT" -b "$src" @"$dst" www.example.test "$type" "$@"
	lab_dig_summary "$type"
}

lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --client "$LAB_CLIENT4/32" \
	--client "$LAB_CLIENT6/128" || lab_finish
for proto in udp tcp; do
	args=()
	[ "$proto" = tcp ] && args=(+tcp +nocookie)
	P=${proto^^}
	lab_decoy_reset
	lab_check_eq "$proto v4: listed source $LAB_CLIENT4 answered over DoT" \
		"NOERROR $LAB_UP_A from $LAB_DECOY4#53 ($P)" "$(ask "$LAB_CLIENT4" "$LAB_DECOY4" A "${args[@]}")"
	lab_check_eq "$proto v6: listed source $LAB_CLIENT6 answered over DoT" \
		"NOERROR $LAB_UP_AAAA from $LAB_DECOY6#53 ($P)" "$(ask "$LAB_CLIENT6" "$LAB_DECOY6" AAAA "${args[@]}")"
	lab_check_eq "$proto: the decoy saw nothing from the listed sources" 0 "$(lab_decoy_count)"
	lab_check_eq "$proto v4: other source $OTHER4 not captured (the decoy answers)" \
		"NOERROR $LAB_DECOY_A from $LAB_DECOY4#53 ($P)" "$(ask "$OTHER4" "$LAB_DECOY4" A "${args[@]}")"
	lab_check_eq "$proto v6: other source $OTHER6 not captured (the decoy answers)" \
		"NOERROR $LAB_DECOY_AAAA from $LAB_DECOY6#53 ($P)" "$(ask "$OTHER6" "$LAB_DECOY6" AAAA "${args[@]}")"
done
lab_stop_dotgw

lab_log "no --client: every source is captured"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" || lab_finish
lab_decoy_reset
lab_check_eq "v4: $OTHER4 answered over DoT" "NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" \
	"$(ask "$OTHER4" "$LAB_DECOY4" A)"
lab_check_eq "v6: $OTHER6 answered over DoT" "NOERROR $LAB_UP_AAAA from $LAB_DECOY6#53 (UDP)" \
	"$(ask "$OTHER6" "$LAB_DECOY6" AAAA)"
lab_check_eq "the decoy saw nothing" 0 "$(lab_decoy_count)"
lab_stop_dotgw

lab_run "$NS_GW" "$DOTGW" --scope gateway --client 198.51.100.0/33 --check-config
lab_check_eq "a bad prefix: exit status 2" 2 "$LAB_RC"
lab_check_match "a bad prefix: the error names the option and the value" \
	"--client.*198\.51\.100\.0/33" "$LAB_OUT"

lab_finish
