#!/bin/bash
# bridge_early_flow.test.sh - a DNS flow from behind a bridge that began before dotgw started.
# On a container host conntrack runs already (Docker's and Podman's NAT); the bridge redirect
# (a nat chain) acts on a flow's first packet only, so a client that keeps its source port (a
# forwarder in a container, a device with a fixed port) would go on reaching the server it
# asked, in plaintext, past a running dotgw. dotgw deletes such entries at start: the flow's
# next query is captured. Both modes (nfqueue: TCP only, as UDP is queued), --fail closed. And
# with --fail open, once dotgw stops, the flows it redirected reach their servers again.
#
#   ctr1 198.51.100.130/25 --- vc1 - br0 198.51.100.129/25 [gateway: dotgw, masquerade to gw-u,
#                                                          bridge-nf-call-iptables=1]
#
# Usage: bridge_early_flow.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" conntrack
lab_require_dotgw "${1:-}"
lab_setup

ip -n "$NS_GW" link add br0 type bridge && ip -n "$NS_GW" link set br0 up &&
	ip -n "$NS_GW" addr add 198.51.100.129/25 dev br0 || lab_bail "cannot build the bridge"
if ! ip netns exec "$NS_GW" sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null; then
	lab_skip "no br_netfilter here (net.bridge.bridge-nf-call-iptables is missing)"
fi
lab_ns_new CTR1 ctr1
lab_veth "$NS_GW" vc1 "$CTR1" eth0 || lab_bail "cannot wire the container"
ip -n "$NS_GW" link set vc1 master br0
ip -n "$CTR1" addr add 198.51.100.130/25 dev eth0
ip -n "$CTR1" route add default via 198.51.100.129
# a container engine's NAT: conntrack tracks every flow before dotgw starts
ip netns exec "$NS_GW" nft -f - <<'NFT' || lab_bail "cannot add the container engine's NAT"
table ip ctrhost {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 198.51.100.128/25 oifname != "br0" masquerade
	}
}
NFT

# ask: one UDP query from the container's fixed source port 5353 to the decoy's address
ask()
{
	lab_dig "$CTR1" -b 198.51.100.130#5353 @"$LAB_DECOY4" www.example.test A +tries=1
}

for mode in tproxy nfqueue; do
	lab_decoy_reset
	ask
	lab_check_eq "$mode, before dotgw: the decoy answers the container (fixed port)" \
		"NOERROR $LAB_DECOY_A" "$(lab_dig_status) $(lab_dig_rdata A)"
	lab_check_num "$mode, before dotgw: conntrack has the flow" \
		"$(ip netns exec "$NS_GW" conntrack -L -p udp --dport 53 --sport 5353 2>/dev/null |
			grep -c 'dport=53')" -ge 1
	lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --mode "$mode" --scope gateway --interface br0 \
		--fail closed || lab_finish
	lab_decoy_reset
	ask
	lab_check_eq "$mode: the same flow's next query is answered over DoT" \
		"NOERROR $LAB_UP_A" "$(lab_dig_status) $(lab_dig_rdata A)"
	lab_check_eq "$mode: nothing reached the decoy" 0 "$(lab_decoy_count)"
	lab_stop_dotgw
	lab_check_eq "$mode: dotgw exits 0" 0 "$?"
	lab_run "$NS_GW" "$DOTGW" --remove-rules --scope gateway --interface br0
	lab_check_eq "$mode: --remove-rules exits 0" 0 "$LAB_RC"
	# (the next round's first query shows that --remove-rules released the redirected flow)
done

# the other way round: with --fail open, once dotgw stops DNS flows as before it, the flows it
# redirected included (their entries would point at the closed listener port)
for mode in tproxy nfqueue; do
	lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --mode "$mode" --scope gateway --interface br0 ||
		lab_finish
	lab_decoy_reset
	ask
	lab_check_eq "$mode, fail open: the flow is answered over DoT" \
		"NOERROR $LAB_UP_A" "$(lab_dig_status) $(lab_dig_rdata A)"
	lab_stop_dotgw
	lab_check_eq "$mode, fail open: dotgw exits 0" 0 "$?"
	ask
	lab_check_eq "$mode, fail open, dotgw stopped: the same flow reaches the decoy again" \
		"NOERROR $LAB_DECOY_A" "$(lab_dig_status) $(lab_dig_rdata A)"
done
lab_finish
