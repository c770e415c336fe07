#!/bin/bash
# open_resolver.test.sh - an internet-facing gateway is not an open resolver: a host beyond
# the uplink gets no answer through the gateway (asking the gateway's addresses, or a LAN
# address through it), while LAN clients are answered over DoT. Gateway scope without
# --interface or --client is refused with a message naming them (the command line, --scope
# both, a config file, --check-config); queries to the gateway's own addresses are not captured
# unless --capture-local; tproxy and nfqueue mode. The shipped dotgw.conf (host scope, as the
# bare command) answers nobody beyond the uplink either.
#
#   client 198.51.100.2 --- gw-c [gateway: dotgw --scope gateway ] gw-u --- u0 [upstream, ISP]
#                                [  --interface gw-c            ]              u-w
#                                [  default via 203.0.113.2     ]               |
#                                [  (203.0.113.128/25 too)      ]               |
#                                [               gw-d --- decoy ]              w0 [wan host
#                                                                  203.0.113.130/25, 2001:db8:200::2]
#
# Usage: open_resolver.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"
lab_setup

WAN4=203.0.113.130
WAN6=2001:db8:200::2
lab_ns_new NS_WAN wan
if ! lab_veth "$NS_UP" u-w "$NS_WAN" w0 ||
	! ip -n "$NS_UP" addr add 203.0.113.129/25 dev u-w ||
	! ip -n "$NS_UP" addr add 2001:db8:200::1/64 dev u-w nodad ||
	! ip netns exec "$NS_UP" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
		>/dev/null ||
	! ip -n "$NS_WAN" addr add "$WAN4/25" dev w0 ||
	! ip -n "$NS_WAN" addr add "$WAN6/64" dev w0 nodad ||
	! ip -n "$NS_WAN" route add default via 203.0.113.129 ||
	! ip -n "$NS_WAN" -6 route add default via 2001:db8:200::1 ||
	! ip -n "$NS_GW" route add 203.0.113.128/25 via "$LAB_UP4" ||
	! ip -n "$NS_GW" route add default via "$LAB_UP4" ||
	! ip -n "$NS_GW" -6 route add default via "$LAB_UP6"; then
	lab_bail "building the host beyond the uplink"
fi

# ask NS SERVER TYPE [DIG-ARGS]: one short query, summed up by lab_dig_summary.
ask()
{
	local ns=$1 dst=$2 type=$3
	shift 3
	lab_dig "$ns" +time=1 +tries=1 @"$dst" www.example.test "$type" "$@"
	lab_dig_summary "$type"
}

# the control: the wan host's queries do cross the gateway (to the decoy, not captured)
lab_check_eq "the wan host reaches the decoy through the gateway" \
	"NOERROR $LAB_DECOY_A from $LAB_DECOY4#53 (UDP)" "$(ask "$NS_WAN" "$LAB_DECOY4" A)"

NONE="  from  ()"

# refused DESC ARGS...: dotgw exits 2 before doing anything, naming --interface and --client.
refused()
{
	local desc=$1
	shift
	lab_run "$NS_GW" "$DOTGW" "$@"
	if [ "$LAB_RC" = 0 ] || [ "$LAB_RC" = 124 ]; then
		lab_fail "$desc: refused" "dotgw ran (exit $LAB_RC)"
		return
	fi
	lab_check_eq "$desc: refused with exit 2" 2 "$LAB_RC"
	lab_check_match "$desc: the message names --interface and --client" \
		'--interface.*--client' "$LAB_OUT"
	lab_notok "$desc: no table was installed" lab_dotgw_table_exists
}

lab_log "gateway scope on every interface is refused"
# an old dotgw that starts anyway: show what that means, then stop it
lab_bg "$NS_GW" "$LAB_DIR/open.log" "$DOTGW" "${LAB_DOTGW_ARGS[@]}" --scope gateway
OPEN_JOB=$LAB_BG_PID
if LAB_WAIT_PID=$OPEN_JOB lab_wait_until 50 grep -qw ready "$LAB_DIR/open.log"; then
	lab_fail "--scope gateway without --interface: refused" "dotgw started:" \
		"$(lab_indent <"$LAB_DIR/open.log" | tail -n 3)"
	lab_check_eq "(dotgw running on every interface) the wan host gets no answer from $LAB_GW_UP4" \
		"$NONE" "$(ask "$NS_WAN" "$LAB_GW_UP4" A)"
	lab_bg_stop "$OPEN_JOB"
else
	wait "$OPEN_JOB" 2>/dev/null
	lab_check_eq "--scope gateway without --interface: exit 2" 2 "$?"
	lab_bg_forget "$OPEN_JOB"
	lab_check_match "--scope gateway: the message names --interface and --client" \
		'--interface.*--client' "$(cat "$LAB_DIR/open.log")"
fi
refused "--scope both" "${LAB_DOTGW_ARGS[@]}" --scope both
refused "--scope gateway --check-config" "${LAB_DOTGW_ARGS[@]}" --scope gateway --check-config
printf 'scope = gateway\nmode = nfqueue\n' >"$LAB_DIR/gw.conf"
refused "config file 'scope = gateway'" --config "$LAB_DIR/gw.conf" --check-config
SHIPPED="$(dirname "$0")/../../packaging/dotgw.conf"
lab_run "$NS_GW" "$DOTGW" --config "$SHIPPED" --check-config
lab_check_eq "the shipped dotgw.conf passes --check-config (scope host)" 0 "$LAB_RC"

lab_log "the shipped dotgw.conf (scope host), the lab's upstream on the command line"
lab_start_dotgw --config "$SHIPPED" "${LAB_DOTGW_ARGS[@]}" || lab_finish
lab_check_eq "shipped config: wan host asking $LAB_GW_UP4: no answer" "$NONE" \
	"$(ask "$NS_WAN" "$LAB_GW_UP4" A)"
lab_check_eq "shipped config: the gateway's own query answered over DoT" \
	"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" "$(ask "$NS_GW" "$LAB_DECOY4" A)"
lab_stop_dotgw
lab_check_eq "shipped config: dotgw exits 0" 0 "$?"

for mode in tproxy nfqueue; do
	lab_log "$mode: --scope gateway --interface $LAB_GW_IF_CLIENT"
	lab_decoy_reset
	lab_upstream_reset
	lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --mode "$mode" --scope gateway \
		--interface "$LAB_GW_IF_CLIENT" || lab_finish
	for dst in "$LAB_GW_UP4" "$LAB_GW_CLIENT4" "$LAB_CLIENT4"; do
		lab_check_eq "$mode: wan host asking $dst (UDP): no answer" "$NONE" \
			"$(ask "$NS_WAN" "$dst" A)"
	done
	lab_check_eq "$mode: wan host asking $LAB_GW_UP6 (UDP): no answer" "$NONE" \
		"$(ask "$NS_WAN" "$LAB_GW_UP6" AAAA)"
	lab_check_eq "$mode: wan host asking $LAB_GW_UP4 (TCP): no answer" "$NONE" \
		"$(ask "$NS_WAN" "$LAB_GW_UP4" A +tcp)"
	lab_check_eq "$mode: the upstream got no query from the wan host" 0 "$(lab_upstream_queries)"
	lab_check_eq "$mode: LAN client asking the decoy: answered over DoT" \
		"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" "$(ask "$NS_CLIENT" "$LAB_DECOY4" A)"
	lab_check_eq "$mode: LAN client over IPv6 and TCP: answered over DoT" \
		"NOERROR $LAB_UP_AAAA from $LAB_DECOY6#53 (TCP)" \
		"$(ask "$NS_CLIENT" "$LAB_DECOY6" AAAA +tcp)"
	lab_check_eq "$mode: the decoy saw nothing" 0 "$(lab_decoy_count)"
	lab_check_eq "$mode: LAN client asking the gateway's own address: not captured" "$NONE" \
		"$(ask "$NS_CLIENT" "$LAB_GW_CLIENT4" A)"
	lab_stop_dotgw
	lab_check_eq "$mode: dotgw exits 0" 0 "$?"
done

lab_log "--client alone also limits capture"
lab_upstream_reset
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --client 198.51.100.0/24 || lab_finish
lab_check_eq "--client: wan host asking $LAB_GW_UP4: no answer" "$NONE" \
	"$(ask "$NS_WAN" "$LAB_GW_UP4" A)"
lab_check_eq "--client: wan host asking $LAB_CLIENT4 through the gateway: no answer" "$NONE" \
	"$(ask "$NS_WAN" "$LAB_CLIENT4" A)"
lab_check_eq "--client: LAN client answered over DoT" \
	"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" "$(ask "$NS_CLIENT" "$LAB_DECOY4" A)"
lab_stop_dotgw

lab_log "--capture-local: the gateway's own address answers its LAN, not the wan"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" \
	--capture-local || lab_finish
lab_check_eq "--capture-local: LAN client asking $LAB_GW_CLIENT4: answered over DoT" \
	"NOERROR $LAB_UP_A from $LAB_GW_CLIENT4#53 (UDP)" "$(ask "$NS_CLIENT" "$LAB_GW_CLIENT4" A)"
lab_check_eq "--capture-local: LAN client asking $LAB_GW_CLIENT6 over TCP: answered" \
	"NOERROR $LAB_UP_AAAA from $LAB_GW_CLIENT6#53 (TCP)" \
	"$(ask "$NS_CLIENT" "$LAB_GW_CLIENT6" AAAA +tcp)"
lab_check_eq "--capture-local: wan host asking $LAB_GW_UP4: no answer" "$NONE" \
	"$(ask "$NS_WAN" "$LAB_GW_UP4" A)"
lab_check_eq "--capture-local: wan host asking $LAB_GW_CLIENT4: no answer" "$NONE" \
	"$(ask "$NS_WAN" "$LAB_GW_CLIENT4" A)"
lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"
lab_finish
