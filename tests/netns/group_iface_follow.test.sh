#!/bin/bash
# group_iface_follow.test.sh - a client group bound to an interface (--group NAME=@br0) follows
# the interface by name: the bridge is deleted and made again under a running dotgw (as
# "systemctl restart docker" does; it gets a new index) and its container is still in the
# group, its deny rule still holds, over UDP and TCP, with no reload; a query sent the moment
# the bridge is back is policed too; in nfqueue mode dotgw starts before the bridge exists; a
# group that a reload brings in follows its bridge as well. The LAN client, on another
# interface, is not in the group.
#
#   ctr 198.51.100.130 --- vc1 -- br0 198.51.100.129/25 [gateway: dotgw] gw-u --- upstream
#   c0  198.51.100.2   --------------- gw-c                              gw-d --- decoy
#
# Usage: group_iface_follow.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"
lab_setup

# bridge_make: br0 with its address, the container's veth in it
bridge_make()
{
	ip -n "$NS_GW" link add br0 type bridge &&
		ip -n "$NS_GW" addr add 198.51.100.129/25 dev br0 &&
		ip -n "$NS_GW" link set br0 up &&
		ip -n "$NS_GW" link set vc1 master br0
}

# The IP hooks of bridged frames would run inside the bridge (br_netfilter), where TPROXY's
# socket is lost; this gateway does without bridge filtering, in its own namespace only.
if [ -e /proc/sys/net/bridge ]; then
	ip netns exec "$NS_GW" sysctl -qw net.bridge.bridge-nf-call-iptables=0 \
		net.bridge.bridge-nf-call-ip6tables=0
fi
lab_ns_new CTR ctr
lab_veth "$NS_GW" vc1 "$CTR" eth0 || lab_bail "cannot wire the container"
bridge_make || lab_bail "cannot build the bridge"
ip -n "$CTR" addr add 198.51.100.130/25 dev eth0 &&
	ip -n "$CTR" route add default via 198.51.100.129 || lab_bail "cannot address the container"

# ask NS NAME [DIG-OPTION...]: one A query to the decoy address
ask()
{
	local ns=$1 name=$2
	shift 2
	lab_dig "$ns" @"$LAB_DECOY4" "$name" A +tries=1 +time=3 "$@"
}

# held WHEN: the container's queries (UDP, TCP) are denied, the LAN client's are not
held()
{
	ask "$CTR" www.example.test
	lab_check_eq "$1: the container (group bridged) gets NXDOMAIN over UDP" "NXDOMAIN (UDP)" \
		"$(lab_dig_status) ($(lab_dig_proto))"
	ask "$CTR" www.example.test +tcp
	lab_check_eq "$1: ...and over TCP" "NXDOMAIN (TCP)" "$(lab_dig_status) ($(lab_dig_proto))"
	ask "$CTR" x.bench.test
	lab_check_eq "$1: a name it may resolve resolves" "NOERROR 203.0.113.99" \
		"$(lab_dig_status) $(lab_dig_rdata A)"
	ask "$NS_CLIENT" www.example.test
	lab_check_eq "$1: the LAN client (no group) is answered" "NOERROR $LAB_UP_A" \
		"$(lab_dig_status) $(lab_dig_rdata A)"
}

for mode in tproxy nfqueue; do
	if [ "$mode" = nfqueue ]; then
		lab_log "nfqueue: dotgw starts while br0 does not exist"
		ip -n "$NS_GW" link del br0 || lab_bail "cannot delete the bridge"
	fi
	lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --mode "$mode" --scope gateway --interface br0 \
		--interface "$LAB_GW_IF_CLIENT" --group bridged=@br0 --deny bridged:example.test ||
		lab_finish
	if [ "$mode" = nfqueue ]; then
		lab_ok "nfqueue: the missing interface is named at start" \
			grep -q "no interface 'br0' now" "$DOTGW_LOG"
		bridge_make || lab_bail "cannot make the bridge"
	fi
	held "$mode: at start"

	for round in 1 2; do
		old=$(ip netns exec "$NS_GW" cat /sys/class/net/br0/ifindex)
		lab_log "$mode, round $round: br0 (index $old) deleted and made again"
		ip -n "$NS_GW" link del br0 || lab_bail "cannot delete the bridge"
		bridge_make || lab_bail "cannot make the bridge again"
		new=$(ip netns exec "$NS_GW" cat /sys/class/net/br0/ifindex)
		lab_check_num "$mode, round $round: the new bridge has another index ($old -> $new)" \
			"$new" -ne "$old"
		held "$mode, round $round, no reload"
	done
	lab_log "$mode: 80 other veth pairs come and go (the name table grows, then forgets)"
	for ((i = 0; i < 80; i++)); do
		echo "link add churn$i type veth peer name churnp$i"
	done >"$LAB_DIR/churn-add"
	for ((i = 0; i < 80; i++)); do
		echo "link del churn$i"
	done >"$LAB_DIR/churn-del"
	ip -n "$NS_GW" -batch "$LAB_DIR/churn-add" && ip -n "$NS_GW" -batch "$LAB_DIR/churn-del" ||
		lab_fail "$mode: cannot add and delete veth pairs"
	ip -n "$NS_GW" link del br0 && bridge_make || lab_bail "cannot make the bridge again"
	held "$mode, after the churn"
	lab_stop_dotgw
	lab_check_eq "$mode: dotgw exits 0" 0 "$?"
done

lab_log "reload: the group appears by SIGHUP, after dotgw dropped its privileges"
CONF="$LAB_DIR/dotgw.conf"
printf '%s\n' "upstream = $LAB_UP4#$LAB_AUTH_NAME" "ca-file = $LAB_CA" "scope = gateway" \
	"interface = br0" "interface = $LAB_GW_IF_CLIENT" "log-level = debug" >"$CONF"
lab_start_dotgw --config "$CONF" || lab_finish
ask "$CTR" www.example.test
lab_check_eq "reload: no group yet, the container resolves" "NOERROR $LAB_UP_A" \
	"$(lab_dig_status) $(lab_dig_rdata A)"
printf '%s\n' "group = bridged=@br0" "deny = bridged:example.test" >>"$CONF"
kill -HUP "$DOTGW_PID"
lab_wait_until 50 grep -q 'reloaded' "$DOTGW_LOG"
lab_ok "reload: the reload is logged" grep -q 'reloaded' "$DOTGW_LOG"
held "reload: after it"
ip -n "$NS_GW" link del br0 && bridge_make || lab_bail "cannot make the bridge again"
held "reload: bridge made again"
lab_stop_dotgw
lab_check_eq "reload: dotgw exits 0" 0 "$?"

lab_check_eq "the decoy saw nothing" 0 "$(lab_decoy_count)"
lab_finish
