#!/bin/bash
# bridge_nf.test.sh - clients behind a Linux bridge of the gateway with br_netfilter on
# (net.bridge.bridge-nf-call-iptables=1 and -ip6tables=1: Docker's and Podman's setting; the
# IP hooks of bridged frames then run inside the bridge). dotgw --scope gateway --interface br0
# must answer them in both modes, UDP and TCP, IPv4 and IPv6, from the very address they asked,
# with the original destination in its query log and dnstap and per-client policy applied;
# nothing may reach the decoy; a DNS server of the gateway on the bridge address keeps its own
# queries; one in another container is captured unless --exempt names it. Then the sysctl is flipped to 0 under a running dotgw (as Docker may do after
# dotgw started) and capture still works. With --fail closed and dotgw killed, bridged queries
# get no answer and still nothing reaches the decoy.
#
#   ctr1 198.51.100.130/25      --- vc1 -.
#        2001:db8:100:1::130/64           br0 198.51.100.129/25         gw-u --- upstream (DoT)
#   ctr2 198.51.100.131/25      --- vc2 -'    2001:db8:100:1::129/64    gw-d --- decoy 192.0.2.53
#        2001:db8:100:1::131/64           [gateway: dotgw, bridge-nf-call-ip(6)tables=1]
#
# Usage: bridge_nf.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"
lab_setup

ip -n "$NS_GW" link add br0 type bridge && ip -n "$NS_GW" link set br0 up &&
	ip -n "$NS_GW" addr add 198.51.100.129/25 dev br0 &&
	ip -n "$NS_GW" addr add 2001:db8:100:1::129/64 dev br0 nodad ||
	lab_bail "cannot build the bridge"
# br_netfilter is what this test is about: without it there is nothing to test
if ! ip netns exec "$NS_GW" sysctl -qw net.bridge.bridge-nf-call-iptables=1 \
	net.bridge.bridge-nf-call-ip6tables=1 2>/dev/null; then
	lab_skip "no br_netfilter here (net.bridge.bridge-nf-call-iptables is missing)"
fi
for i in 1 2; do
	lab_ns_new "CTR$i" "ctr$i"
	ns_var="CTR$i"
	ns=${!ns_var}
	lab_veth "$NS_GW" "vc$i" "$ns" eth0 || lab_bail "cannot wire container $i"
	ip -n "$NS_GW" link set "vc$i" master br0
	ip -n "$ns" addr add "198.51.100.13$((i - 1))/25" dev eth0
	ip -n "$ns" addr add "2001:db8:100:1::13$((i - 1))/64" dev eth0 nodad
	ip -n "$ns" route add default via 198.51.100.129
	ip -n "$ns" -6 route add default via 2001:db8:100:1::129
done

# A DNS server of the gateway itself on the bridge address (as Podman's aardvark-dns is): its
# queries are not dotgw's to take.
{
	lab_unbound_common local
	cat <<-EOF
		interface: 198.51.100.129@53
		local-data: "www.example.test. A 192.0.2.77"
		remote-control:
			control-enable: no
	EOF
} >"$LAB_DIR/local.conf"
lab_bg "$NS_GW" "$LAB_DIR/local.log" unbound -d -c "$LAB_DIR/local.conf"
LAB_WAIT_PID=$LAB_BG_PID lab_wait_until 100 sh -c "[ \"\$(ip netns exec '$NS_GW' dig +short \
	+time=1 +tries=1 @198.51.100.129 www.example.test A)\" = 192.0.2.77 ]" ||
	lab_bail "the gateway's own DNS server on the bridge address did not start"

# A DNS server in the second container (as a Pi-hole container would be): with br_netfilter,
# queries crossing the bridge to it pass the IP hooks and are captured like any other, unless
# exempted.
{
	lab_unbound_common ctr2
	cat <<-EOF
		interface: 198.51.100.131@53
		local-data: "www.example.test. A 192.0.2.88"
		remote-control:
			control-enable: no
	EOF
} >"$LAB_DIR/ctr2.conf"
lab_bg "$CTR2" "$LAB_DIR/ctr2.log" unbound -d -c "$LAB_DIR/ctr2.conf"
LAB_WAIT_PID=$LAB_BG_PID lab_wait_until 100 sh -c "[ \"\$(ip netns exec '$CTR2' dig +short \
	+time=1 +tries=1 @198.51.100.131 www.example.test A)\" = 192.0.2.88 ]" ||
	lab_bail "the DNS server in the second container did not start"

# local_served WHAT PROTO: a container's query to the gateway's own server stays with it
local_served()
{
	local proto=+notcp
	[ "$2" = TCP ] && proto=+tcp
	lab_dig "$CTR1" @198.51.100.129 www.example.test A "$proto" +time=2 +tries=1
	lab_check_eq "$1: a query to the gateway's own DNS server ($2) is that server's" \
		"NOERROR 192.0.2.77 from 198.51.100.129#53 ($2)" "$(lab_dig_summary A)"
}

# ask NS V PROTO [NAME] [DIG-OPTION...]: one query (A for V=4, AAAA for V=6) to the decoy's
# address of that family, over PROTO (UDP or TCP).
ask()
{
	local ns=$1 v=$2 proto=+notcp name=${4:-www.example.test} to=$LAB_DECOY4 type=A
	[ "$3" = TCP ] && proto=+tcp
	[ "$v" = 6 ] && to=$LAB_DECOY6 type=AAAA
	shift 3
	[ $# -gt 0 ] && shift
	lab_dig "$ns" @"$to" "$name" "$type" "$proto" +time=2 +tries=1 "$@"
}

# served WHAT NS V PROTO: the upstream's answer, from the decoy's address and port 53
served()
{
	local what=$1 want
	shift
	ask "$@"
	if [ "$2" = 6 ]; then
		want="NOERROR $LAB_UP_AAAA from $LAB_DECOY6#53 ($3)"
		lab_check_eq "$what: IPv6 $3 answered over DoT from the asked address" \
			"$want" "$(lab_dig_summary AAAA)"
	else
		want="NOERROR $LAB_UP_A from $LAB_DECOY4#53 ($3)"
		lab_check_eq "$what: IPv4 $3 answered over DoT from the asked address" \
			"$want" "$(lab_dig_summary A)"
	fi
}

lab_decoy_reset
for mode in tproxy nfqueue; do
	# shellcheck disable=SC2054 # the comma separates a group's members, not arguments
	args=("${LAB_DOTGW_ARGS[@]}" --mode "$mode" --scope gateway --interface br0
		--query-log --group kids=198.51.100.131,2001:db8:100:1::131
		--deny kids:bench.test)
	[ "$mode" = nfqueue ] && args+=(--queues 1)

	lab_log "$mode: bridged clients with bridge-nf-call-iptables=1"
	lab_start_dotgw "${args[@]}" || lab_finish
	for v in 4 6; do
		for proto in UDP TCP; do
			served "$mode" "$CTR1" "$v" "$proto"
			ask "$CTR2" "$v" "$proto" ok.bench.test
			lab_check_eq "$mode: policy holds for a bridged client (IPv$v $proto)" \
				NXDOMAIN "$(lab_dig_status)"
		done
	done
	# nfqueue mode queues UDP in prerouting, whose own-address exclusion is not this test's
	[ "$mode" = tproxy ] && local_served "$mode" UDP
	local_served "$mode" TCP
	# the query log names the address the client asked, not the bridge's own (the
	# redirect target): the original destination comes back from conntrack
	LAB_CMD=
	for dst in "$LAB_DECOY4:53" "\\[$LAB_DECOY6\\]:53"; do
		lab_check_match "$mode: the debug log has the original destination $dst (UDP)" \
			"query www\\.example\\.test\\.? type [0-9]+ from [^ ]+ to $dst over UDP" \
			"$(cat "$DOTGW_LOG")"
	done
	lab_check_nomatch "$mode: no query logged as addressed to the bridge" \
		"to (198\\.51\\.100\\.129|\\[2001:db8:100:1::129\\]):" "$(cat "$DOTGW_LOG")"

	lab_dig "$CTR1" @198.51.100.131 www.example.test A +time=2 +tries=1
	lab_check_eq "$mode: a query to a DNS server container on the bridge is captured" \
		"NOERROR $LAB_UP_A from 198.51.100.131#53 (UDP)" "$(lab_dig_summary A)"

	if [ "$mode" = tproxy ]; then
		lab_log "$mode: bridge-nf-call-iptables flipped to 0 under a running dotgw"
		ip netns exec "$NS_GW" sysctl -qw net.bridge.bridge-nf-call-iptables=0 \
			net.bridge.bridge-nf-call-ip6tables=0
		served "$mode, sysctl 0" "$CTR1" 4 UDP
		served "$mode, sysctl 0" "$CTR1" 6 TCP
		ip netns exec "$NS_GW" sysctl -qw net.bridge.bridge-nf-call-iptables=1 \
			net.bridge.bridge-nf-call-ip6tables=1
	fi
	lab_stop_dotgw
	lab_check_eq "$mode: dotgw exits 0" 0 "$?"
	lab_check_eq "$mode: nothing reached the decoy" 0 "$(lab_decoy_count)"

	lab_log "$mode, fail closed: dotgw killed, bridged DNS blocked"
	lab_start_dotgw "${args[@]}" --fail closed || lab_finish
	served "$mode closed" "$CTR1" 4 UDP
	lab_stop_dotgw KILL
	lab_check_eq "$mode closed: SIGKILL (status 137)" 137 "$?"
	for v in 4 6; do
		for proto in UDP TCP; do
			ask "$CTR1" "$v" "$proto" www.example.test +time=1
			lab_check_eq "$mode closed, killed: IPv$v $proto gets no answer" "" \
				"$(lab_dig_status)"
		done
	done
	lab_check_eq "$mode closed, killed: nothing reached the decoy" 0 "$(lab_decoy_count)"
	lab_run "$NS_GW" "$DOTGW" --remove-rules
	lab_check_eq "$mode closed: --remove-rules exits 0" 0 "$LAB_RC"
done

lab_log "a DNS server container on the bridge, exempted"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface br0 \
	--exempt 198.51.100.131 || lab_finish
for proto in +notcp +tcp; do
	lab_dig "$CTR1" @198.51.100.131 www.example.test A "$proto" +time=2 +tries=1
	lab_check_eq "exempt server container ($proto): its own answer" \
		"NOERROR 192.0.2.88 from 198.51.100.131#53" \
		"$(lab_dig_status) $(lab_dig_rdata A) from $(lab_dig_server)"
done
served "exempt server container: another destination" "$CTR1" 4 UDP
lab_stop_dotgw

lab_log "dnstap (log level info): bridged queries name the address the client asked"
if command -v fstrm_capture >/dev/null && command -v dnstap-ldns >/dev/null; then
	chmod o+x "$LAB_DIR"
	TAPDIR="$LAB_DIR/tap"
	mkdir -m 755 "$TAPDIR"
	SOCK="$TAPDIR/dnstap.sock"
	CAP="$TAPDIR/capture.fstrm"
	lab_bg "$NS_GW" "$LAB_DIR/fstrm_capture.log" fstrm_capture -t protobuf:dnstap.Dnstap \
		-u "$SOCK" -w "$CAP"
	capture=$LAB_BG_PID
	LAB_WAIT_PID=$capture lab_wait_until 50 test -S "$SOCK" ||
		lab_bail "fstrm_capture did not start"
	chmod 777 "$SOCK"
	args=("${LAB_DOTGW_ARGS[@]}" --log-level info --scope gateway --interface br0
		--dnstap "$SOCK")
	lab_start_dotgw "${args[@]}" || lab_finish
	for v in 4 6; do
		for proto in UDP TCP; do
			served "dnstap" "$CTR1" "$v" "$proto"
		done
	done
	lab_stop_dotgw
	lab_bg_stop "$capture" INT
	ip netns exec "$NS_GW" dnstap-ldns -y -r "$CAP" >"$TAPDIR/read.yaml" 2>&1
	LAB_CMD=
	lab_check_eq "dnstap: 8 messages, each naming the decoy's address, port 53" \
		"8 8 8" "$(grep -c 'response_address:' "$TAPDIR/read.yaml") $(grep -Ec \
		"response_address: \"?($LAB_DECOY4|$LAB_DECOY6)\"?\$" "$TAPDIR/read.yaml") $(grep \
		-c 'response_port: 53$' "$TAPDIR/read.yaml")"
else
	lab_log "(skipped: fstrm_capture or dnstap-ldns missing)"
fi

lab_log "without dotgw: bridged DNS reaches the decoy (the check above can fail)"
ask "$CTR1" 4 UDP
lab_check_eq "no dotgw: the decoy answers" "NOERROR $LAB_DECOY_A" \
	"$(lab_dig_status) $(lab_dig_rdata A)"
lab_check_num "no dotgw: the decoy counted it" "$(lab_decoy_count)" -gt 0
lab_finish
