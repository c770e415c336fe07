#!/bin/bash
# local_server.test.sh - a DNS server on the gateway itself keeps every query that is its own.
# A real unbound listens on the gateway's LAN addresses (198.51.100.1, 2001:db8:100::1, port
# 53) and is queried directly by a LAN client and by the gateway host itself, while dotgw
# captures the client's other DNS, in gateway and in both scope, tproxy and nfqueue mode.
# unbound's own query counter must match what was sent to it: dotgw neither captures those
# queries (they are addressed to one of the gateway's addresses) nor takes the server's
# datagrams with a reply socket bound to its address. With --capture-local, dotgw answers
# the LAN client's queries to that address itself (over DoT, from that address, raw
# packets; an answer too large for one packet comes truncated, TC set, for a retry over
# TCP), while queries it does not capture (the host's own in gateway scope, another
# interface's in both scope) still reach unbound, every one.
#
#   client --- gw-c [gateway: dotgw --interface gw-c               ] gw-u --- upstream
#   198.51.100.2    [ unbound on 198.51.100.1@53, 2001:db8:100::1@53] gw-d --- decoy
#                   [ (www.example.test A 198.51.100.53)            ]  (also a client of
#                                                                        the local server)
#
# Usage: local_server.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"
lab_setup

LOCAL_A=198.51.100.53
LOCAL_AAAA=2001:db8:100::53
ROUNDS=4

conf="$LAB_DIR/local.conf"
{
	lab_unbound_common local
	cat <<-EOF
		interface: $LAB_GW_CLIENT4@53
		interface: $LAB_GW_CLIENT6@53
		local-data: "www.example.test. A $LOCAL_A"
		local-data: "www.example.test. AAAA $LOCAL_AAAA"
		remote-control:
			control-enable: yes
			control-use-cert: no
			control-interface: "$LAB_DIR/local.ctl"
	EOF
} >"$conf"
lab_bg "$NS_GW" "$LAB_DIR/local.log" unbound -d -c "$conf"
LOCAL_PID=$LAB_BG_PID
local_answers()
{
	[ "$(ip netns exec "$NS_GW" timeout 3 dig +time=1 +tries=1 +short @"$LAB_GW_CLIENT4" \
		www.example.test A 2>/dev/null)" = "$LOCAL_A" ]
}
LAB_WAIT_PID=$LOCAL_PID lab_wait_until 100 local_answers ||
	lab_bail "the local unbound did not start: $(cat "$LAB_DIR/local.log")"

# local_queries: unbound's count of queries received since the last call.
local_queries()
{
	ip netns exec "$NS_GW" timeout 10 unbound-control -c "$conf" stats 2>&1 |
		sed -n 's/^total\.num\.queries=//p'
}
local_queries >/dev/null

ask()
{
	local ns=$1 dst=$2 type=$3
	shift 3
	lab_dig "$ns" +time=2 +tries=1 @"$dst" www.example.test "$type" "$@"
	lab_dig_summary "$type"
}

# to_server LABEL NS [DIG-ARGS]: ROUNDS queries (A over IPv4, AAAA over IPv6, alternately)
# from NS to the local server; each must bring the server's own answer, and the server must
# count every one. First the LAN client asks the decoy (captured); with CAPTURED_TOO it also
# asks the local address (captured by --capture-local) before each: dotgw's answers leave
# from the local server's address while the server's queries arrive.
to_server()
{
	local label=$1 ns=$2 i good=0 seen
	shift 2
	ask "$NS_CLIENT" "$LAB_DECOY4" A >/dev/null
	for ((i = 0; i < ROUNDS; i++)); do
		if [ -n "${CAPTURED_TOO:-}" ]; then
			ask "$NS_CLIENT" "$LAB_GW_CLIENT4" A >/dev/null
			ask "$NS_CLIENT" "$LAB_GW_CLIENT6" AAAA >/dev/null
		fi
		if ((i % 2)); then
			[ "$(ask "$ns" "$LAB_GW_CLIENT6" AAAA "$@")" = \
				"NOERROR $LOCAL_AAAA from $LAB_GW_CLIENT6#53 ($PROTO)" ] && good=$((good + 1))
		else
			[ "$(ask "$ns" "$LAB_GW_CLIENT4" A "$@")" = \
				"NOERROR $LOCAL_A from $LAB_GW_CLIENT4#53 ($PROTO)" ] && good=$((good + 1))
		fi
	done
	seen=$(local_queries)
	lab_check_eq "$label: $ROUNDS of $ROUNDS answered by the local server" "$ROUNDS" "$good"
	lab_check_eq "$label: the local server counted $ROUNDS queries" "$ROUNDS" "$seen"
}

for scope in gateway both; do
	for mode in tproxy nfqueue; do
		label="$mode, --scope $scope"
		lab_decoy_reset
		lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --mode "$mode" --scope "$scope" \
			--interface "$LAB_GW_IF_CLIENT" || lab_finish
		local_queries >/dev/null
		PROTO=UDP to_server "$label: LAN client, UDP" "$NS_CLIENT"
		# TCP takes the same path in both modes (TPROXY listeners)
		[ "$mode" = tproxy ] && PROTO=TCP to_server "$label: LAN client, TCP" "$NS_CLIENT" +tcp
		PROTO=UDP to_server "$label: the gateway itself, UDP" "$NS_GW"
		lab_check_eq "$label: the client's other DNS was captured (decoy saw none)" 0 \
			"$(lab_decoy_count)"
		lab_stop_dotgw
		lab_check_eq "$label: dotgw exits 0" 0 "$?"
	done
done

for mode in tproxy nfqueue; do
	label="$mode, --capture-local"
	lab_log "$label: dotgw answers the LAN's queries to the local address; the rest reach unbound"
	# a UDP size cap above the big answer: it would leave whole, in fragments, through a
	# socket bound to the local address; raw packets do not fragment
	lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --mode "$mode" --scope both \
		--interface "$LAB_GW_IF_CLIENT" --capture-local --udp-size-cap 4096 || lab_finish
	local_queries >/dev/null
	lab_check_eq "$label: LAN client asking $LAB_GW_CLIENT4 gets dotgw's answer (DoT)" \
		"NOERROR $LAB_UP_A from $LAB_GW_CLIENT4#53 (UDP)" "$(ask "$NS_CLIENT" "$LAB_GW_CLIENT4" A)"
	lab_check_eq "$label: ... and over IPv6" \
		"NOERROR $LAB_UP_AAAA from $LAB_GW_CLIENT6#53 (UDP)" \
		"$(ask "$NS_CLIENT" "$LAB_GW_CLIENT6" AAAA)"
	lab_dig "$NS_CLIENT" +time=2 +tries=1 +ignore +bufsize=4096 @"$LAB_GW_CLIENT4" \
		big.example.test TXT
	lab_check_eq "$label: a large answer from the local address comes truncated (TC) over UDP" \
		"NOERROR tc" "$(lab_dig_status) $(lab_dig_has_flag tc && echo tc)"
	lab_check_eq "$label: ... and whole over TCP" "$LAB_BIG_TXT_COUNT" \
		"$(lab_dig "$NS_CLIENT" +tcp @"$LAB_GW_CLIENT4" big.example.test TXT &&
			lab_dig_ancount)"
	lab_check_eq "$label: the local server saw none of those" 0 "$(local_queries)"
	# the decoy's side is not a --interface: its queries to the local address are not captured
	CAPTURED_TOO=1 PROTO=UDP to_server "$label: decoy-side host, UDP" "$NS_DECOY"
	lab_stop_dotgw
	lab_check_eq "$label: dotgw exits 0" 0 "$?"

	lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --mode "$mode" --scope gateway \
		--interface "$LAB_GW_IF_CLIENT" --capture-local || lab_finish
	local_queries >/dev/null
	CAPTURED_TOO=1 PROTO=UDP to_server "$label, --scope gateway: the gateway itself, UDP" "$NS_GW"
	lab_stop_dotgw
	lab_check_eq "$label, --scope gateway: dotgw exits 0" 0 "$?"
done
lab_finish
