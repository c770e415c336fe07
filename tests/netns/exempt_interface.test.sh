#!/bin/bash
# exempt_interface.test.sh - --exempt-interface 'tun*': DNS that the routing table sends out
# through a VPN tunnel is left alone (it is encrypted already), everything else is captured
# as before. A VPN's resolver serves corp.example behind the tunnel; the DoT upstream knows no
# such zone. Without the option (the state before it existed) dotgw captures the query to the
# VPN's resolver and asks the upstream, which answers NXDOMAIN: internal names stop resolving.
# With it, corp.example comes from the VPN's resolver and the upstream never sees the name,
# while www.example.test asked of the decoy is still answered by the upstream. Host scope
# (dotgw on the "laptop", the client namespace) and gateway scope (a client behind the
# gateway, whose route to the VPN's resolver is the gateway's tunnel); TPROXY and NFQUEUE
# modes, UDP and TCP, IPv4 and IPv6. Also: the warning for an exempted interface that is not a
# tunnel, and none for one that is.
#
# The kernel here has no WireGuard, and a TUN device carries nothing without a program behind
# it, so the tunnels are veth pairs named tun0 (what a route through a VPN looks like to the
# ruleset: an output interface by name). A real TUN device (tun9, idle) shows the kind check.
#
#                       vpn (unbound @53: *.corp.example A 192.0.2.99, nothing else)
#            v0 192.0.2.202/29, 2001:db8:80::53/64      v1 192.0.2.210/29, 2001:db8:81::53/64
#                  |                                          |
#   tun0 192.0.2.201/29, 2001:db8:80::1/64     tun0 192.0.2.209/29, 2001:db8:81::1/64
#   client [dotgw --scope host] c0 ------- gw-c [gateway: dotgw --scope gateway] gw-u --- upstream
#   (tun9: an idle TUN device)                                                   gw-d --- decoy
#
# Usage: exempt_interface.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"
lab_setup

VPN_HOST4=192.0.2.202
VPN_HOST6=2001:db8:80::53
VPN_GW4=192.0.2.210
VPN_GW6=2001:db8:81::53
CORP_A=192.0.2.99

lab_ns_new NS_VPN vpn
if ! lab_veth "$NS_CLIENT" tun0 "$NS_VPN" v0 ||
	! lab_veth "$NS_GW" tun0 "$NS_VPN" v1 ||
	! ip -n "$NS_CLIENT" addr add 192.0.2.201/29 dev tun0 ||
	! ip -n "$NS_CLIENT" addr add 2001:db8:80::1/64 dev tun0 nodad ||
	! ip -n "$NS_VPN" addr add "$VPN_HOST4/29" dev v0 ||
	! ip -n "$NS_VPN" addr add "$VPN_HOST6/64" dev v0 nodad ||
	! ip -n "$NS_GW" addr add 192.0.2.209/29 dev tun0 ||
	! ip -n "$NS_GW" addr add 2001:db8:81::1/64 dev tun0 nodad ||
	! ip -n "$NS_VPN" addr add "$VPN_GW4/29" dev v1 ||
	! ip -n "$NS_VPN" addr add "$VPN_GW6/64" dev v1 nodad ||
	! ip -n "$NS_VPN" route add 198.51.100.0/24 via 192.0.2.209 ||
	! ip -n "$NS_VPN" -6 route add 2001:db8:100::/64 via 2001:db8:81::1; then
	lab_bail "building the tunnels to the VPN namespace"
fi
if ! ip -n "$NS_CLIENT" tuntap add dev tun9 mode tun; then
	lab_bail "creating a TUN device"
fi

{
	lab_unbound_common vpn
	cat <<-EOF
		interface: $VPN_HOST4@53
		interface: $VPN_HOST6@53
		interface: $VPN_GW4@53
		interface: $VPN_GW6@53
		local-zone: "corp.example." redirect
		local-data: "corp.example. A $CORP_A"
		remote-control:
			control-enable: no
	EOF
} >"$LAB_DIR/vpn.conf"
lab_bg "$NS_VPN" "$LAB_DIR/vpn.log" unbound -d -c "$LAB_DIR/vpn.conf"
VPN_JOB=$LAB_BG_PID
# shellcheck disable=SC2317 # called through lab_wait_until
vpn_answers()
{
	[ "$(ip netns exec "$NS_VPN" timeout 3 dig +time=1 +tries=1 +short @"$VPN_HOST4" \
		ready.corp.example A 2>/dev/null)" = "$CORP_A" ]
}
LAB_WAIT_PID=$VPN_JOB lab_wait_until 100 vpn_answers || lab_bail "the VPN's unbound did not start"

lab_log "sanity, no dotgw: the VPN's resolver answers through each tunnel"
for s in "$VPN_HOST4" "$VPN_HOST6"; do
	lab_dig "$NS_CLIENT" @"$s" sanity.corp.example A
	lab_check_eq "client: corp.example @$s through its tun0" "NOERROR $CORP_A from $s#53 (UDP)" \
		"$(lab_dig_summary A)"
done
for s in "$VPN_GW4" "$VPN_GW6"; do
	lab_dig "$NS_CLIENT" @"$s" sanity.corp.example A
	lab_check_eq "client: corp.example @$s through the gateway's tun0" \
		"NOERROR $CORP_A from $s#53 (UDP)" "$(lab_dig_summary A)"
done

# seen FILE NAME: how many query log lines of the unbound writing FILE name NAME.
seen()
{
	grep -c -F " $2. A IN" "$1"
}

# run_case SCOPE MODE EXEMPT: start dotgw (scope host: in the client namespace; gateway: on the
# gateway for the client's side) in MODE, with --exempt-interface 'tun*' when EXEMPT is yes;
# ask the VPN's resolver a name of its own over UDP and TCP, IPv4 and IPv6, and the decoy
# www.example.test.
run_case()
{
	local scope=$1 mode=$2 exempt=$3 tag s proto name P args want
	local servers=("$VPN_HOST4" "$VPN_HOST6") dargs=()
	tag="$scope $mode, $([ "$exempt" = yes ] && echo "--exempt-interface 'tun*'" || echo "no option")"
	lab_log "$tag"
	if [ "$scope" = host ]; then
		LAB_DOTGW_NS=$NS_CLIENT
		dargs=(--scope host)
	else
		LAB_DOTGW_NS=$NS_GW
		dargs=(--scope gateway --interface "$LAB_GW_IF_CLIENT")
		servers=("$VPN_GW4" "$VPN_GW6")
	fi
	[ "$exempt" = yes ] && dargs+=(--exempt-interface 'tun*')
	lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --mode "$mode" "${dargs[@]}" || return 1
	for s in "${servers[@]}"; do
		for proto in udp tcp; do
			P=${proto^^}
			args=(+notcp)
			[ "$proto" = tcp ] && args=(+tcp +nocookie)
			name="$proto-${s//[:.]/-}-$scope-$mode-$exempt.corp.example"
			lab_dig "$NS_CLIENT" @"$s" "$name" A "${args[@]}"
			# for the record (README): what dig printed, and who logged the name
			if [ "$proto$s" = "udp${servers[0]}" ]; then
				printf '%s\n' "$LAB_OUT" | grep -E -e '->>HEADER<<-' \
					-e "^$name\.[[:space:]].*IN" -e '^;; SERVER' | sed 's/^/#   dig: /'
				grep -H -F " $name. A IN" "$LAB_DIR/upstream.log" "$LAB_DIR/vpn.log" |
					sed -e "s|^$LAB_DIR/|#   log: |"
			fi
			if [ "$exempt" = yes ]; then
				lab_check_eq "$tag: $P corp.example @$s: the VPN's resolver answers" \
					"NOERROR $CORP_A from $s#53 ($P)" "$(lab_dig_summary A)"
				lab_check_eq "$tag: $P @$s: the DoT upstream never saw the name" \
					0 "$(seen "$LAB_DIR/upstream.log" "$name")"
				lab_check_eq "$tag: $P @$s: the VPN's resolver got it" \
					1 "$(seen "$LAB_DIR/vpn.log" "$name")"
			else
				lab_check_eq "$tag: $P corp.example @$s: captured, the upstream says NXDOMAIN" \
					"NXDOMAIN  from $s#53 ($P)" "$(lab_dig_summary A)"
				lab_check_num "$tag: $P @$s: the DoT upstream got the name" \
					"$(seen "$LAB_DIR/upstream.log" "$name")" -ge 1
				lab_check_eq "$tag: $P @$s: the VPN's resolver never saw it" \
					0 "$(seen "$LAB_DIR/vpn.log" "$name")"
			fi
		done
	done
	for s in "$LAB_DECOY4" "$LAB_DECOY6"; do
		want=$LAB_UP_A
		lab_dig "$NS_CLIENT" @"$s" www.example.test A
		lab_check_eq "$tag: www.example.test @$s is still answered by the DoT upstream" \
			"NOERROR $want from $s#53 (UDP)" "$(lab_dig_summary A)"
	done
	if [ "$exempt" = yes ]; then
		lab_check_match "$tag: a warning names tun0, a veth, not a tunnel" \
			"warn: --exempt-interface 'tun\*': interface 'tun0' \(kind veth" "$(cat "$DOTGW_LOG")"
		if [ "$scope" = host ]; then
			lab_check_nomatch "$tag: no warning for tun9, a TUN device" \
				"interface 'tun9'" "$(cat "$DOTGW_LOG")"
		fi
	fi
	lab_stop_dotgw
	lab_check_eq "$tag: dotgw exits 0 on SIGTERM" 0 "$?"
}

for mode in tproxy nfqueue; do
	run_case host "$mode" no
	run_case host "$mode" yes
done
for mode in tproxy nfqueue; do
	run_case gateway "$mode" no
	run_case gateway "$mode" yes
done
lab_check_eq "the decoy never saw a query" 0 "$(lab_decoy_count)"

lab_log "a reload adds the exemption: host scope, from the config file"
LAB_DOTGW_NS=$NS_CLIENT
CONF="$LAB_DIR/exempt.conf"
: >"$CONF"
chmod 644 "$CONF"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --config "$CONF" --scope host || lab_finish
lab_dig "$NS_CLIENT" @"$VPN_HOST4" before-reload.corp.example A
lab_check_eq "before the reload: corp.example @$VPN_HOST4 is captured (NXDOMAIN)" \
	"NXDOMAIN  from $VPN_HOST4#53 (UDP)" "$(lab_dig_summary A)"
echo "exempt-interface = tun*" >"$CONF"
kill -HUP "$DOTGW_PID"
lab_wait_until 50 grep -q 'reloaded' "$DOTGW_LOG"
lab_ok "the reload is logged" grep -q "reloaded $CONF" "$DOTGW_LOG"
lab_dig "$NS_CLIENT" @"$VPN_HOST4" after-reload.corp.example A
lab_check_eq "after the reload: the VPN's resolver answers" \
	"NOERROR $CORP_A from $VPN_HOST4#53 (UDP)" "$(lab_dig_summary A)"
lab_check_eq "after the reload: the DoT upstream never saw the name" \
	0 "$(seen "$LAB_DIR/upstream.log" after-reload.corp.example)"
lab_stop_dotgw

lab_log "the table lists the exemptions as nft writes them"
LAB_DOTGW_NS=$NS_GW
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope both --interface "$LAB_GW_IF_CLIENT" \
	--exempt-interface 'tun*' --exempt-interface wg0 || lab_finish
table=$(ip netns exec "$NS_GW" nft list table inet dotgw)
lab_check_match "output: oifname \"tun*\" return" '^[[:space:]]*oifname "tun\*" return$' "$table"
lab_check_match "output: oifname \"wg0\" return" '^[[:space:]]*oifname "wg0" return$' "$table"
lab_check_eq "prerouting and bridge_nat: fib daddr oifname \"tun*\" return" 2 \
	"$(printf '%s\n' "$table" | grep -c '^[[:space:]]*fib daddr oifname "tun\*" return$')"
lab_stop_dotgw

lab_log "--check-config warns about a non-tunnel interface too, and accepts the option"
lab_capture "dotgw --exempt-interface 'tun*' --check-config" ip netns exec "$NS_CLIENT" \
	timeout 10 "$DOTGW" --config none --exempt-interface 'tun*' --check-config
lab_check_eq "--check-config with --exempt-interface 'tun*' exits 0" 0 "$LAB_RC"
lab_check_match "--check-config warns about tun0, a veth" \
	"warn: --exempt-interface 'tun\*': interface 'tun0' \(kind veth" "$LAB_OUT"
lab_check_nomatch "--check-config: no warning about tun9, a TUN device" "interface 'tun9'" "$LAB_OUT"

lab_log "a pattern nft cannot match is refused, naming the option and the value"
lab_capture "dotgw --exempt-interface 't*n'" ip netns exec "$NS_GW" timeout 10 "$DOTGW" \
	--config none --exempt-interface 't*n' --check-config
lab_check_num "--exempt-interface 't*n' is refused" "$LAB_RC" -ne 0
lab_check_match "the message names --exempt-interface and 't*n'" \
	"--exempt-interface: invalid value 't\*n'" "$LAB_OUT"
lab_finish
