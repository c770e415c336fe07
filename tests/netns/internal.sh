#!/bin/bash
# internal.sh - an internal resolver behind the lab's gateway, for the split-DNS tests
# (forward_split, local_zones, forward_reload). Source it after lib.sh, then call
# lab_start_internal after lab_setup.
#
#   gateway gw-i 10.8.0.254/24, fd00:8::254/64 --- i0 10.8.0.1/24, fd00:8::1/64 (internal)
#                                                  unbound, plain DNS @53, log-queries:
#                                                  corp.example, and data in the locally
#                                                  served zones that dotgw would answer
#                                                  otherwise (so an answer shows who gave it)
#
# The internal resolver has a private address on purpose: it stands for a LAN's or a VPN's
# own server, and dotgw treats private addresses differently (locally served zones). It is
# reachable only inside the lab.
#
# Data: www.corp.example A 10.8.0.80; 5.0.8.10.in-addr.arpa PTR printer.corp.example.;
#       fd00:8::5 PTR printer6.corp.example.; printer.home.arpa A 10.8.0.9;
#       printer.local A 10.8.0.10; x.invalid A 10.8.0.11; localhost A 10.8.0.12;
#       _dns.resolver.arpa TXT "internal"; big.corp.example 40 TXT of 60 characters (more
#       than a UDP answer holds). Everything else NXDOMAIN.

LAB_INT4=10.8.0.1
LAB_INT6=fd00:8::1
LAB_GW_INT4=10.8.0.254
LAB_GW_INT6=fd00:8::254
LAB_INT_A=10.8.0.80

lab_start_internal()
{
	local conf="$LAB_DIR/internal.conf"
	lab_ns_new NS_INT int
	lab_veth "$NS_INT" i0 "$NS_GW" gw-i || return 1
	ip -n "$NS_INT" addr add "$LAB_INT4/24" dev i0 &&
		ip -n "$NS_INT" addr add "$LAB_INT6/64" dev i0 nodad &&
		ip -n "$NS_INT" route add default via "$LAB_GW_INT4" &&
		ip -n "$NS_INT" -6 route add default via "$LAB_GW_INT6" &&
		ip -n "$NS_GW" addr add "$LAB_GW_INT4/24" dev gw-i &&
		ip -n "$NS_GW" addr add "$LAB_GW_INT6/64" dev gw-i nodad || return 1
	{
		lab_unbound_common internal
		cat <<-EOF
			interface: $LAB_INT4@53
			interface: $LAB_INT6@53
			# UDP answers of at most 1232 octets, whatever the query advertises
			max-udp-size: 1232
			local-zone: "corp.example." static
			local-data: "www.corp.example. A $LAB_INT_A"
			local-data-ptr: "10.8.0.5 printer.corp.example."
			local-data-ptr: "fd00:8::5 printer6.corp.example."
			local-data: "printer.home.arpa. A 10.8.0.9"
			local-zone: "local." static
			local-data: "printer.local. A 10.8.0.10"
			local-zone: "invalid." static
			local-data: "x.invalid. A 10.8.0.11"
			local-zone: "localhost." static
			local-data: "localhost. A 10.8.0.12"
			local-zone: "resolver.arpa." static
			local-data: '_dns.resolver.arpa. TXT "internal"'
		EOF
		for ((i = 1; i <= 40; i++)); do
			printf "\tlocal-data: 'big.corp.example. TXT \"big-%02d-%s\"'\n" "$i" \
				abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyza
		done
		cat <<-EOF
			remote-control:
				control-enable: no
		EOF
	} >"$conf"
	lab_bg "$NS_INT" "$LAB_DIR/internal.log" unbound -d -c "$conf"
	LAB_INT_PID=$LAB_BG_PID
	if ! LAB_WAIT_PID=$LAB_INT_PID lab_wait_until 100 lab_internal_answers; then
		echo "internal unbound did not start; its log:"
		lab_indent <"$LAB_DIR/internal.log"
		return 1
	fi
}

lab_internal_answers()
{
	local a
	a=$(ip netns exec "$NS_INT" timeout 3 dig +time=1 +tries=1 +short \
		@"$LAB_INT4" www.corp.example A 2>/dev/null)
	[ "$a" = "$LAB_INT_A" ]
}

# lab_internal_saw NAME: did the internal resolver's query log show NAME (case-insensitive)?
lab_internal_saw()
{
	grep -qiF " $1. " "$LAB_DIR/internal.log"
}

# lab_upstream_saw NAME: did the DoT upstream's query log show NAME?
lab_upstream_saw()
{
	grep -qiF " $1. " "$LAB_DIR/upstream.log"
}
