#!/bin/bash
# own_sockets.test.sh - every socket of dotgw's carries the bypass mark, so that in host scope
# its own packets are never captured again: a local TCP client bound to source port 53 gets
# its answer (the answer's destination port is 53, which the output chain would otherwise
# capture; with --fail closed such packets are dropped), IPv4 and IPv6, and so does an HTTP
# client on port 53 of the --metrics endpoint. Its TCP and UDP sockets show the mark.
#
#   gateway: dotgw --scope host --fail closed --metrics 192.0.2.1:9853
#            dig +tcp -b 192.0.2.1#53 @192.0.2.53  (and over IPv6)     gw-u --- upstream
#            python3 HTTP GET from 192.0.2.1:53                        gw-d --- decoy
#
# Usage: own_sockets.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" python3 ss
lab_require_dotgw "${1:-}"
lab_setup

BYPASS=0xd08
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope host --fail closed \
	--metrics "$LAB_GW_DECOY4:9853" || lab_finish

lab_dig "$NS_GW" +tcp -b "$LAB_GW_DECOY4#53" @"$LAB_DECOY4" www.example.test A
lab_check_eq "host, TCP from source port 53, IPv4: answered by the upstream" \
	"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (TCP)" "$(lab_dig_summary A)"
lab_dig "$NS_GW" +tcp -b "$LAB_GW_DECOY6#53" @"$LAB_DECOY6" www.example.test AAAA
lab_check_eq "host, TCP from source port 53, IPv6: answered by the upstream" \
	"NOERROR $LAB_UP_AAAA from $LAB_DECOY6#53 (TCP)" "$(lab_dig_summary AAAA)"
lab_dig "$NS_GW" +notcp -b "$LAB_GW_DECOY4#53" @"$LAB_DECOY4" www.example.test A
lab_check_eq "host, UDP from source port 53, IPv4: answered by the upstream" \
	"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" "$(lab_dig_summary A)"
lab_check_eq "nothing reached the decoy" 0 "$(lab_decoy_count)"

# The metrics endpoint, asked from port 53 of this host: its answer goes to port 53.
cat >"$LAB_DIR/get53.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 53))
s.settimeout(5)
s.connect((sys.argv[1], 9853))
s.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
body = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    body += b
print(body.decode(errors="replace"))
PY
lab_run "$NS_GW" python3 "$LAB_DIR/get53.py" "$LAB_GW_DECOY4"
lab_check_match "metrics from source port 53: the exposition arrives" \
	'^dotgw_queries_total\{mode="tproxy",protocol="tcp"\} 2' "$LAB_OUT"

# ss -e shows the mark of each socket ("fwmark:0x..."): every TCP listener of dotgw's.
listeners=$(ip netns exec "$NS_GW" ss -Htlnep 2>/dev/null | grep '"dotgw"')
lab_check_num "dotgw has TCP listeners (TPROXY v4, v6, metrics)" \
	"$(printf '%s\n' "$listeners" | grep -c .)" -ge 3
tcp=$(ip netns exec "$NS_GW" ss -Htanep 2>/dev/null | grep '"dotgw"')
lab_check_match "dotgw's upstream connection is among its TCP sockets" \
	"ESTAB .*$LAB_UP4:853" "$tcp"
lab_check_eq "every TCP socket of dotgw's carries the bypass mark" "" \
	"$(printf '%s\n' "$tcp" | grep -v "fwmark:$BYPASS")"
# UDP: the listeners and the reply sockets bound to the addresses asked (192.0.2.53:53 ...)
udp=$(ip netns exec "$NS_GW" ss -Huanep 2>/dev/null | grep '"dotgw"')
lab_check_num "dotgw has UDP sockets (TPROXY v4, v6, reply sockets)" \
	"$(printf '%s\n' "$udp" | grep -c .)" -ge 3
lab_check_eq "every UDP socket of dotgw's carries the bypass mark" "" \
	"$(printf '%s\n' "$udp" | grep -v "fwmark:$BYPASS")"

lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"
lab_finish
