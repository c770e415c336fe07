#!/bin/bash
# tcp_fastopen.test.sh - --tcp-fastopen: once the upstream has given this host a TFO cookie,
# a new DoT connection carries its TLS ClientHello in the SYN (the kernel's TFO counters in the
# gateway's and the upstream's namespaces grow); without the option they stay at 0.
#
#   client --- gw-c [gateway: dotgw --tcp-fastopen --idle-timeout 300] gw-u --- upstream
#              net.ipv4.tcp_fastopen=1 (client)         unbound DoT (built --enable-tfo-server),
#                                                       net.ipv4.tcp_fastopen=3 (server too)
#
# dotgw closes each connection 300 ms after its last answer, so each query opens a new one
# (after polling until the old one is gone: no timing is judged).
#
# Usage: tcp_fastopen.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" ss nstat
lab_require_dotgw "${1:-}"
lab_setup
# the namespaces' own sysctls: the upstream accepts TFO, the gateway may use it
ip netns exec "$NS_UP" sysctl -qw net.ipv4.tcp_fastopen=3 || lab_bail "setting tcp_fastopen"
ip netns exec "$NS_GW" sysctl -qw net.ipv4.tcp_fastopen=1 || lab_bail "setting tcp_fastopen"

nstat_get()
{
	ip netns exec "$1" nstat -asz "$2" 2>/dev/null | awk -v k="$2" '$1 == k { print $2 }'
}

# shellcheck disable=SC2317 # called through lab_wait_until
no_conns()
{
	[ "$(ip netns exec "$NS_GW" ss -Htn state established "( dport = :853 )" | wc -l)" = 0 ]
}

# round N ARGS...: run dotgw with ARGS, ask N queries, each on a new connection
round()
{
	local n=$1 i what
	shift
	what=${*:-plain}:
	lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" \
		--standby 0 --idle-timeout 300 "$@" || lab_finish
	for ((i = 1; i <= n; i++)); do
		lab_dig "$NS_CLIENT" @"$LAB_UP4" "t$RANDOM-$i.bench.test" A
		lab_check_eq "$what query $i is answered" \
			"NOERROR 203.0.113.99 from $LAB_UP4#53 (UDP)" "$(lab_dig_summary A)"
		lab_ok "$what the connection closes idle" lab_wait_until 100 no_conns
	done
	lab_stop_dotgw
	lab_check_eq "dotgw exits 0" 0 "$?"
}

# --- without the option: plain connects
round 2
lab_check_eq "without --tcp-fastopen: no SYN carried data (TcpExtTCPFastOpenActive)" 0 \
	"$(nstat_get "$NS_GW" TcpExtTCPFastOpenActive)"

# --- with it: the first connection gets a cookie, the next ones send data in the SYN
round 3 --tcp-fastopen
a=$(nstat_get "$NS_GW" TcpExtTCPFastOpenActive)
p=$(nstat_get "$NS_UP" TcpExtTCPFastOpenPassive)
lab_log "TcpExtTCPFastOpenActive (gateway) $a, TcpExtTCPFastOpenPassive (upstream) $p"
lab_check_num "--tcp-fastopen: the gateway's SYNs carried data that the upstream acknowledged" \
	"${a:-0}" -ge 2
lab_check_num "--tcp-fastopen: the upstream accepted data in SYNs" "${p:-0}" -ge 2
lab_check_eq "--tcp-fastopen: no TFO failure at the upstream (TcpExtTCPFastOpenPassiveFail)" 0 \
	"$(nstat_get "$NS_UP" TcpExtTCPFastOpenPassiveFail)"
lab_finish
