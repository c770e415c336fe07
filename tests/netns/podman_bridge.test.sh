#!/bin/bash
# podman_bridge.test.sh - real Podman containers on a Podman bridge network (netavark) of the
# gateway, with br_netfilter on as Podman and Docker leave it (bridge-nf-call-iptables=1):
# dotgw --scope gateway --interface <the network's bridge> answers the containers' DNS over
# DoT, in both modes, through glibc (getent, UDP/IPv4 and, with "options use-vc", TCP/IPv6)
# and dig (UDP and TCP, IPv4 and IPv6), from the address they asked; nothing reaches the decoy.
#
#   container A (--dns 192.0.2.53)        --.
#   container B (--dns 2001:db8:53::53,       +- podmanN 198.51.100.129/25   [gateway: dotgw]
#                --dns-option use-vc)     --'         2001:db8:100:1::1/64   gw-u --- upstream
#                                                                            gw-d --- decoy
#
# Podman and the containers' root: tests/netns/podman_lab.sh (this machine's dig, getent and
# sleep and the libraries they link; nothing pulled; removed on exit).
#
# Usage: podman_bridge.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" podman nsenter ldd getent sleep iptables
[ -x /usr/lib/podman/netavark ] || command -v netavark >/dev/null ||
	lab_skip "needs netavark (Podman's network backend)"
lab_require_dotgw "${1:-}"
lab_setup

# shellcheck source=podman_lab.sh
. "$(dirname "$0")/podman_lab.sh"
pd_lab_setup "$(command -v dig)" "$(command -v getent)" "$(command -v sleep)"

A="$LAB_ID-a"
B="$LAB_ID-b"
start_ctr "$A" --dns "$LAB_DECOY4" ||
	lab_skip "podman cannot run a container on a bridge network here: $LAB_OUT"
start_ctr "$B" --dns "$LAB_DECOY6" --dns-option use-vc || lab_bail "podman run $B"
lab_check_eq "the containers' bridge $BR is on the gateway" 0 \
	"$(ip -n "$NS_GW" link show "$BR" >/dev/null 2>&1; echo $?)"

# ctr_exec CTR CMD...: run CMD in a container
ctr_exec()
{
	local c=$1
	shift
	pd exec "$c" "$@"
}

# dig_in CTR V PROTO: dig in a container for www.example.test (A over IPv4, AAAA over IPv6)
dig_in()
{
	local proto=+notcp to=$LAB_DECOY4 type=A
	[ "$3" = TCP ] && proto=+tcp
	[ "$2" = 6 ] && to=$LAB_DECOY6 type=AAAA
	ctr_exec "$1" dig +time=2 +tries=1 "$proto" @"$to" www.example.test "$type"
}

# check_served WHAT: every client path answers with the upstream's data
check_served()
{
	local what=$1 v proto
	for v in 4 6; do
		for proto in UDP TCP; do
			dig_in "$A" "$v" "$proto"
			if [ "$v" = 6 ]; then
				lab_check_eq "$what: dig, IPv6 $proto: over DoT, from the asked address" \
					"NOERROR $LAB_UP_AAAA from $LAB_DECOY6#53 ($proto)" \
					"$(lab_dig_summary AAAA)"
			else
				lab_check_eq "$what: dig, IPv4 $proto: over DoT, from the asked address" \
					"NOERROR $LAB_UP_A from $LAB_DECOY4#53 ($proto)" \
					"$(lab_dig_summary A)"
			fi
		done
	done
	ctr_exec "$A" getent ahostsv4 www.example.test
	lab_check_eq "$what: glibc getent ahostsv4 (UDP/IPv4 to $LAB_DECOY4)" "$LAB_UP_A" \
		"$(printf '%s\n' "$LAB_OUT" | awk 'NR == 1 { print $1 }')"
	ctr_exec "$B" getent hosts www.example.test
	lab_check_eq "$what: glibc getent hosts (TCP/IPv6 to $LAB_DECOY6, use-vc)" \
		"$LAB_UP_AAAA" "$(printf '%s\n' "$LAB_OUT" | awk 'NR == 1 { print $1 }')"
	# dotgw's query log: glibc asked over UDP, and over TCP with use-vc
	LAB_CMD=
	lab_check_match "$what: dotgw logged getent's A query over UDP/IPv4" \
		'query 198\.51\.100\.[0-9]+:[0-9]+ www\.example\.test\. 1 NOERROR udp ' \
		"$(cat "$DOTGW_LOG")"
	lab_check_match "$what: dotgw logged getent's AAAA query over TCP/IPv6" \
		'query \[2001:db8:100:1:[0-9a-f:]+\]:[0-9]+ www\.example\.test\. 28 NOERROR tcp ' \
		"$(cat "$DOTGW_LOG")"
}

lab_log "without dotgw: the containers reach the decoy (the checks below can fail)"
lab_decoy_reset
ctr_exec "$A" getent ahostsv4 www.example.test
lab_check_eq "no dotgw: getent gets the decoy's answer" "$LAB_DECOY_A" \
	"$(printf '%s\n' "$LAB_OUT" | awk 'NR == 1 { print $1 }')"
lab_check_num "no dotgw: the decoy counted it" "$(lab_decoy_count)" -gt 0

for mode in tproxy nfqueue; do
	args=("${LAB_DOTGW_ARGS[@]}" --mode "$mode" --scope gateway --interface "$BR"
		--query-log)
	[ "$mode" = nfqueue ] && args+=(--queues 1)
	lab_log "$mode: Podman containers on $BR"
	lab_decoy_reset
	lab_start_dotgw "${args[@]}" || lab_finish
	check_served "$mode"
	lab_stop_dotgw
	lab_check_eq "$mode: dotgw exits 0" 0 "$?"
	lab_check_eq "$mode: nothing reached the decoy" 0 "$(lab_decoy_count)"
done
lab_finish
