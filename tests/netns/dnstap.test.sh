#!/bin/bash
# dnstap.test.sh - --dnstap SOCKET: every client query and response goes out as a dnstap
# message over Frame Streams; fstrm_capture (fstrm-bin) records them and dnstap-ldns (a
# standard dnstap reader) reads the expected number back, with the client's and the asked
# addresses.
#
#   client --- gw-c [gateway: dotgw --dnstap S] --- upstream;  fstrm_capture -u S in the gateway
#
# Usage: dnstap.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" fstrm_capture dnstap-ldns
lab_require_dotgw "${1:-}"
lab_setup

# dotgw writes to the socket as an unprivileged user
chmod o+x "$LAB_DIR"
TAPDIR="$LAB_DIR/tap"
mkdir -m 755 "$TAPDIR"
SOCK="$TAPDIR/dnstap.sock"
CAP="$TAPDIR/capture.fstrm"
lab_bg "$NS_GW" "$LAB_DIR/fstrm_capture.log" fstrm_capture -t protobuf:dnstap.Dnstap -u "$SOCK" \
	-w "$CAP"
capture=$LAB_BG_PID
LAB_WAIT_PID=$capture lab_wait_until 50 test -S "$SOCK" || lab_bail "fstrm_capture did not start"
chmod 777 "$SOCK"

lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --log-level info --scope gateway --interface "$LAB_GW_IF_CLIENT" --dnstap "$SOCK" ||
	lab_finish
for i in 1 2 3; do
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" "tap$i.bench.test" A
done
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" tap1.bench.test A       # from the cache
lab_dig "$NS_CLIENT" @"$LAB_DECOY6" tap6.bench.test A +tcp # IPv6, TCP
lab_check_eq "the queries were answered" NOERROR "$(lab_dig_status)"
lab_stop_dotgw
lab_check_eq "dotgw exits 0 (flushing dnstap)" 0 "$?"
lab_check_eq "no dnstap message dropped" 0 "$(lab_dotgw_stat dnstap_dropped)"
lab_bg_stop "$capture" INT
ip netns exec "$NS_GW" dnstap-ldns -q -r "$CAP" >"$TAPDIR/read.txt" 2>&1
lab_check_eq "dnstap-ldns reads the capture" 0 "$?"
lab_check_eq "5 client queries" 5 "$(grep -c ' CQ ' "$TAPDIR/read.txt")"
lab_check_eq "5 client responses" 5 "$(grep -c ' CR ' "$TAPDIR/read.txt")"
ip netns exec "$NS_GW" dnstap-ldns -y -r "$CAP" >"$TAPDIR/read.yaml" 2>&1
# the 4 IPv4 UDP queries: from the client, to the address it asked, port 53
lab_check_eq "IPv4 messages between the client and the asked address" 8 "$(awk -v c="\"$LAB_CLIENT4\"" \
	-v s="\"$LAB_DECOY4\"" '/query_address:/ { q = $2 } /response_address:/ && q == c && $2 == s { n++ }
	END { print n + 0 }' "$TAPDIR/read.yaml")"
lab_check_eq "the IPv6 query and response went over TCP" 2 \
	"$(grep -A1 'socket_family: INET6' "$TAPDIR/read.yaml" | grep -c 'socket_protocol: TCP')"
lab_check_eq "every message names port 53 as the asked port" 10 \
	"$(grep -c 'response_port: 53$' "$TAPDIR/read.yaml")"
lab_finish
