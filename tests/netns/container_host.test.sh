#!/bin/bash
# container_host.test.sh - dotgw on a container host: three "containers" on a bridge of the
# host (the lab's gateway), dotgw in gateway scope encrypts their DNS, and per-group policy
# holds: the "kids" container gets NXDOMAIN for a denied name and a sinkhole address for
# another, the "web" container may resolve only what its allow list names, the third
# container is exempted and not captured at all; a group can be bound to its own upstreams;
# a group can be an interface (here the bridge: every container), over UDP and TCP.
#
#   ctr1 198.51.100.130 (group kids) --.
#   ctr2 198.51.100.131 (group web)  ---+- br0 198.51.100.129/25 [host = gateway: dotgw] gw-u --- upstream
#   ctr3 198.51.100.132 (exempt)     --'                                                gw-d --- decoy
#
# Usage: container_host.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"
lab_setup

ip -n "$NS_GW" link add br0 type bridge && ip -n "$NS_GW" link set br0 up &&
	ip -n "$NS_GW" addr add 198.51.100.129/25 dev br0 || lab_bail "cannot build the bridge"
# Bridge filtering stays as the kernel sets it (br_netfilter: bridge-nf-call-iptables=1 in a
# new namespace, where it is built in); bridge_nf.test.sh covers both settings.
for i in 1 2 3; do
	lab_ns_new "CTR$i" "ctr$i"
	ns_var="CTR$i"
	ns=${!ns_var}
	lab_veth "$NS_GW" "vc$i" "$ns" eth0 || lab_bail "cannot wire container $i"
	ip -n "$NS_GW" link set "vc$i" master br0
	ip -n "$ns" addr add "198.51.100.13$((i - 1))/25" dev eth0
	ip -n "$ns" route add default via 198.51.100.129
done

# ask NS NAME [TYPE [DIG-OPTION]]: one query to the decoy address
ask()
{
	lab_dig "$1" @"$LAB_DECOY4" "$2" "${3:-A}" ${4:+"$4"} +tries=1 +time=3
}

lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface br0 --timeout 1500 \
	--upstream 203.0.113.9#dot.test \
	--group kids=198.51.100.130/32 --deny kids:example.test \
	--deny kids:ads.bench.test=192.0.2.99 --deny kids:tracker.bench.test=refused \
	--group web=198.51.100.131 --allow web:example.test \
	--group lab=198.51.100.131,198.51.100.133 --group-upstreams lab=2 \
	--exempt 198.51.100.132 || lab_finish

lab_log "kids: deny rules"
ask "$CTR1" www.example.test
lab_check_eq "kids: a denied name is NXDOMAIN" NXDOMAIN "$(lab_dig_status)"
ask "$CTR1" deep.down.example.test
lab_check_eq "kids: a name under the denied suffix is NXDOMAIN" NXDOMAIN "$(lab_dig_status)"
ask "$CTR1" x.ads.bench.test
lab_check_eq "kids: a sinkholed name answers 192.0.2.99" "NOERROR 192.0.2.99" \
	"$(lab_dig_status) $(lab_dig_rdata A)"
ask "$CTR1" x.ads.bench.test AAAA
lab_check_eq "kids: AAAA of an IPv4 sinkhole is empty" "NOERROR 0" \
	"$(lab_dig_status) $(lab_dig_ancount)"
ask "$CTR1" tracker.bench.test
lab_check_eq "kids: a refused name is REFUSED" REFUSED "$(lab_dig_status)"
ask "$CTR1" ok.bench.test
lab_check_eq "kids: other names resolve over DoT" "NOERROR 203.0.113.99" \
	"$(lab_dig_status) $(lab_dig_rdata A)"

lab_log "web: allow list"
ask "$CTR2" www.example.test
lab_check_eq "web: an allowed name resolves over DoT" "NOERROR $LAB_UP_A" \
	"$(lab_dig_status) $(lab_dig_rdata A)"
ask "$CTR2" ok.bench.test
lab_check_eq "web: a name off the allow list is REFUSED" REFUSED "$(lab_dig_status)"

lab_log "exempt container: not captured"
ask "$CTR3" www.example.test
lab_check_eq "exempt: the decoy answers it in plaintext" "NOERROR $LAB_DECOY_A" \
	"$(lab_dig_status) $(lab_dig_rdata A)"
exempt_count=$(lab_decoy_count)
lab_check_num "exempt: its query reached the decoy" "$exempt_count" -gt 0

lab_log "a group bound to an upstream of its own (the second, which does not exist)"
lab_start_dotgw_again()
{
	lab_stop_dotgw
	lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface br0 --timeout 1500 \
		--upstream 203.0.113.9#dot.test --group lab=198.51.100.131 \
		--group-upstreams lab=2 || lab_finish
}
lab_start_dotgw_again
ask "$CTR2" www.example.test
lab_check_eq "bound to a dead upstream: SERVFAIL" SERVFAIL "$(lab_dig_status)"
ask "$CTR1" www.example.test
lab_check_eq "another container, all upstreams: answered by the first" "NOERROR $LAB_UP_A" \
	"$(lab_dig_status) $(lab_dig_rdata A)"
ask "$CTR2" www.example.test
lab_check_eq "the group does not get the other's cached answer" SERVFAIL "$(lab_dig_status)"

lab_log "a group by interface: everything arriving on br0 (the containers), not the LAN client"
lab_stop_dotgw
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface br0 \
	--interface "$LAB_GW_IF_CLIENT" --group bridged=@br0 \
	--deny bridged:example.test --exempt 198.51.100.132 || lab_finish
for proto in +notcp +tcp; do
	ask "$CTR1" www.example.test A "$proto"
	lab_check_eq "on br0 ($proto): denied" NXDOMAIN "$(lab_dig_status)"
	ask "$CTR2" www.example.test A "$proto"
	lab_check_eq "on br0, another container ($proto): denied" NXDOMAIN "$(lab_dig_status)"
	ask "$NS_CLIENT" www.example.test A "$proto"
	lab_check_eq "the LAN client via gw-c ($proto): resolved" "NOERROR $LAB_UP_A" \
		"$(lab_dig_status) $(lab_dig_rdata A)"
done
lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"
lab_check_eq "only the exempt container's query reached the decoy" "$exempt_count" \
	"$(lab_decoy_count)"
lab_finish
