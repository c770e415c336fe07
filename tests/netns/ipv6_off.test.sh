#!/bin/bash
# ipv6_off.test.sh - dotgw on a gateway where IPv6 is disabled by sysctl: it starts, serves
# IPv4 (forwarded clients and the host's own queries, UDP and TCP) in tproxy and nfqueue mode,
# logs once that IPv6 is not captured, and does the same after a reload (SIGHUP). Variants:
#   1. net.ipv6.conf.gw-c.disable_ipv6=1 (the clients' interface only): lo keeps IPv6, so
#      nothing changes and nothing is logged about it;
#   2. net.ipv6.conf.lo.disable_ipv6=1 (lo only): the IPv6 local route is impossible, IPv6
#      DNS is not captured (the client's IPv6 query reaches the decoy), IPv4 is;
#   3. net.ipv6.conf.all.disable_ipv6=1 (every interface, lo included), both modes.
#
#   client --- gw-c [gateway: dotgw --scope both --interface gw-c] gw-u --- upstream
#                   [ IPv6 off as above                          ] gw-d --- decoy
#
# Usage: ipv6_off.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"
lab_setup

WARNING='IPv6 is disabled here'

ask()
{
	local ns=$1 dst=$2 type=$3
	shift 3
	lab_dig "$ns" +time=2 +tries=1 @"$dst" www.example.test "$type" "$@"
	lab_dig_summary "$type"
}

# serves_ipv4 LABEL: forwarded and own IPv4 queries, UDP and TCP, answered over DoT.
serves_ipv4()
{
	lab_decoy_reset
	lab_check_eq "$1: client UDP answered over DoT" \
		"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" "$(ask "$NS_CLIENT" "$LAB_DECOY4" A)"
	lab_check_eq "$1: client TCP answered over DoT" \
		"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (TCP)" \
		"$(ask "$NS_CLIENT" "$LAB_DECOY4" A +tcp)"
	lab_check_eq "$1: the gateway's own UDP query answered over DoT" \
		"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" "$(ask "$NS_GW" "$LAB_DECOY4" A)"
	lab_check_eq "$1: the gateway's own TCP query answered over DoT" \
		"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (TCP)" "$(ask "$NS_GW" "$LAB_DECOY4" A +tcp)"
	lab_check_eq "$1: the decoy saw no IPv4 DNS" 0 "$(lab_decoy_count)"
}

# reload LABEL: SIGHUP, wait for "reloaded", IPv4 still served.
reload()
{
	local n
	n=$(grep -c reloaded "$DOTGW_LOG")
	kill -HUP "$DOTGW_PID"
	if lab_wait_until 50 sh -c "[ \$(grep -c reloaded '$DOTGW_LOG') -gt $n ]"; then
		lab_pass "$1: reloaded"
	else
		lab_fail "$1: reloaded"
	fi
	serves_ipv4 "$1, after the reload"
}

lab_log "1. IPv6 off on the clients' interface only: nothing changes"
ip netns exec "$NS_GW" sysctl -qw net.ipv6.conf.gw-c.disable_ipv6=1 || lab_bail "sysctl"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope both --interface "$LAB_GW_IF_CLIENT" || lab_finish
serves_ipv4 "gw-c off"
lab_check_eq "gw-c off: no IPv6 warning (lo has IPv6)" 0 "$(grep -c "$WARNING" "$DOTGW_LOG")"
lab_stop_dotgw
lab_check_eq "gw-c off: dotgw exits 0" 0 "$?"
ip netns exec "$NS_GW" sysctl -qw net.ipv6.conf.gw-c.disable_ipv6=0
ip -n "$NS_GW" addr add "$LAB_GW_CLIENT6/64" dev "$LAB_GW_IF_CLIENT" nodad 2>/dev/null

lab_log "2. IPv6 off on lo only: IPv4 captured, IPv6 passes uncaptured"
ip netns exec "$NS_GW" sysctl -qw net.ipv6.conf.lo.disable_ipv6=1 || lab_bail "sysctl"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope both --interface "$LAB_GW_IF_CLIENT" || lab_finish
serves_ipv4 "lo off"
lab_check_eq "lo off: logged once that IPv6 is not captured" 1 "$(grep -c "$WARNING" "$DOTGW_LOG")"
lab_decoy_reset
lab_check_eq "lo off: client IPv6 query not captured (the decoy answers)" \
	"NOERROR $LAB_DECOY_AAAA from $LAB_DECOY6#53 (UDP)" "$(ask "$NS_CLIENT" "$LAB_DECOY6" AAAA)"
reload "lo off"
lab_check_eq "lo off: still one IPv6 line after the reload" 1 "$(grep -c "$WARNING" "$DOTGW_LOG")"
lab_stop_dotgw
lab_check_eq "lo off: dotgw exits 0" 0 "$?"
lab_check_eq "lo off: no fwmark rule left (IPv4)" "" \
	"$(ip -n "$NS_GW" rule show | grep -i 'fwmark 0xd07')"
ip netns exec "$NS_GW" sysctl -qw net.ipv6.conf.lo.disable_ipv6=0

lab_log "3. net.ipv6.conf.all.disable_ipv6=1: IPv4 served in both modes"
ip netns exec "$NS_GW" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 || lab_bail "sysctl"
lab_check_eq "all off: lo's disable_ipv6 follows" 1 \
	"$(ip netns exec "$NS_GW" sysctl -n net.ipv6.conf.lo.disable_ipv6)"
for mode in tproxy nfqueue; do
	for fail in open closed; do
		label="all off, $mode, fail $fail"
		lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --mode "$mode" --fail "$fail" --scope both \
			--interface "$LAB_GW_IF_CLIENT" || continue
		serves_ipv4 "$label"
		lab_check_eq "$label: logged once that IPv6 is not captured" 1 \
			"$(grep -c "$WARNING" "$DOTGW_LOG")"
		reload "$label"
		lab_check_eq "$label: still one IPv6 line after the reload" 1 \
			"$(grep -c "$WARNING" "$DOTGW_LOG")"
		lab_stop_dotgw
		lab_check_eq "$label: dotgw exits 0" 0 "$?"
		if [ "$fail" = closed ]; then
			lab_run "$NS_GW" "$DOTGW" --remove-rules
			lab_check_eq "$label: --remove-rules works with IPv6 off" 0 "$LAB_RC"
		fi
	done
done
lab_finish
