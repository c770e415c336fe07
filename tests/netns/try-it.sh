#!/bin/bash
# try-it.sh - see dotgw work without touching your network. Builds a throwaway lab of network
# namespaces (nothing is changed outside them, and they are removed on exit), starts dotgw on
# the lab's gateway, asks a plain DNS question from the client, and shows with tcpdump that only
# DNS-over-TLS (port 853) left the gateway.
#
#   client --- gw-c [gateway: dotgw] gw-u --- upstream 203.0.113.2: DoT @853 (the real answers)
#   dig @192.0.2.53                  gw-d --- decoy 192.0.2.53: plain DNS @53 (other answers)
#                                     ^ tcpdump on gw-u and gw-d
#
# Usage (as root): tests/netns/try-it.sh [PATH-TO-DOTGW]   (default: build/dotgw)
# Needs: ip, nft, unbound, dig, kdig, openssl, tcpdump.

here=$(dirname "$0")
# shellcheck source=lib.sh
. "$here/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" tcpdump
lab_require_dotgw "${1:-$here/../../build/dotgw}"

echo "== building the lab (network namespaces $LAB_ID-*)"
lab_setup

# capture IFACE: tcpdump on the gateway's IFACE into LAB_DIR/IFACE.pcap; prints the job.
capture()
{
	# --immediate-mode and -U: each packet reaches the file at once, not a buffer later.
	lab_bg "$NS_GW" "$LAB_DIR/$1.tcpdump" tcpdump -i "$1" -nn --immediate-mode -U -Z root \
		-w "$LAB_DIR/$1.pcap" 'tcp or udp'
	CAPTURE_JOBS+=("$LAB_BG_PID")
	lab_wait_until 50 grep -q 'listening on' "$LAB_DIR/$1.tcpdump" ||
		lab_bail "tcpdump on $1 did not start: $(cat "$LAB_DIR/$1.tcpdump")"
}

# count FILTER: packets matching FILTER in both captures.
count()
{
	local f n=0
	for f in "$LAB_DIR/$LAB_GW_IF_UP.pcap" "$LAB_DIR/$LAB_GW_IF_DECOY.pcap"; do
		n=$((n + $(tcpdump -r "$f" -nn "$1" 2>/dev/null | wc -l)))
	done
	echo "$n"
}

CAPTURE_JOBS=()
capture "$LAB_GW_IF_UP"
capture "$LAB_GW_IF_DECOY"

echo
echo "== starting dotgw on the gateway"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" || lab_finish

echo
echo "== the client asks 192.0.2.53 (the decoy) for www.example.test, in plain DNS:"
echo "   dig @192.0.2.53 www.example.test"
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test
printf '%s\n' "$LAB_OUT" | sed -n -e '/ANSWER SECTION/,/^$/p' -e '/^;; SERVER/p' | sed 's/^/   /'
answer=$(lab_dig_rdata A)
echo "   -> $answer: the upstream's answer ($LAB_UP_A), not the decoy's ($LAB_DECOY_A),"
echo "      though dig saw it come from 192.0.2.53."

# The DoT exchange has happened; give tcpdump up to 2 s to have written it.
# shellcheck disable=SC2317 # called through lab_wait_until
seen_853()
{
	[ "$(count 'dst port 853')" -gt 0 ]
}
lab_wait_until 20 seen_853
for job in "${CAPTURE_JOBS[@]}"; do
	lab_bg_stop "$job" INT
done
to53=$(count 'port 53')
to853=$(count 'dst port 853')
echo
echo "== what left the gateway (tcpdump on $LAB_GW_IF_UP and $LAB_GW_IF_DECOY)"
echo "   packets to or from port 53 (plain DNS):   $to53"
echo "   packets to port 853 (DNS-over-TLS):        $to853"
echo "   decoy's own count of port-53 packets:     $(lab_decoy_count)"
tcpdump -r "$LAB_DIR/$LAB_GW_IF_UP.pcap" -nn 2>/dev/null | head -n 5 | sed 's/^/   /'

lab_stop_dotgw
rc=$?
echo
echo "== dotgw stopped (exit status $rc): $(grep 'stats:' "$DOTGW_LOG" | tail -n 1)"

echo
if [ "$answer" = "$LAB_UP_A" ] && [ "$to53" = 0 ] && [ "$to853" -gt 0 ]; then
	echo "The plain DNS query was answered over DNS-over-TLS; no plain DNS left the gateway."
	status=0
else
	echo "Something is off: see the output above and $DOTGW_LOG (kept: LAB_KEEP=1)."
	LAB_KEEP=1
	status=1
fi
echo "== removing the lab"
exit "$status"
