#!/bin/bash
# ddr.test.sh - --upstream asked: a query asked of a resolver that designates a DoT resolver by
# verified DDR (RFC 9462) goes to that resolver, encrypted; a resolver without a designation,
# or whose designated resolver's certificate does not cover its address, has its queries sent
# to the configured upstream. Never in plaintext to the asked address.
#
#   client ---- gw-c [gateway: dotgw --scope gateway --upstream asked] gw-u --- upstream
#   198.51.100.2                  |                                            203.0.113.2 (DoT)
#                                gw-r 192.0.2.129/25, 2001:db8:99::1
#                                 |
#               r0: resolvers (one unbound per role, each logging its queries)
#                A   192.0.2.130, 2001:db8:99::a  plain @53: SVCB designates dns.a.test
#                                                 DoT @853: certificate dns.a.test + both IPs
#                B   192.0.2.131                  plain @53: no designation
#                C   192.0.2.132                  plain @53: SVCB designates dns.c.test at .133
#                C'  192.0.2.133                  DoT @853: certificate dns.c.test + 192.0.2.133
#                                                 (does not cover C's address: rejected)
#                D   192.0.2.134                  plain @53: SVCB designates dns.d.test at .134
#                                                 DoT @853: certificate other.test + 192.0.2.134
#                                                 (covers the address, not the name: rejected)
#
# Every server answers www.example.test with its own address: A plain 192.0.2.201, A DoT
# 192.0.2.200, B 192.0.2.211, C 192.0.2.221, C' 192.0.2.220, D 192.0.2.231 (plain) and
# 192.0.2.230 (DoT), the upstream 203.0.113.80.
#
# Usage: ddr.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" curl
lab_require_dotgw "${1:-}"
lab_setup

A4=192.0.2.130
A6=2001:db8:99::a
B4=192.0.2.131
C4=192.0.2.132
CD4=192.0.2.133
D4=192.0.2.134
A_DOT=192.0.2.200
A_PLAIN=192.0.2.201
B_PLAIN=192.0.2.211
C_DOT=192.0.2.220
C_PLAIN=192.0.2.221
D_DOT=192.0.2.230
D_PLAIN=192.0.2.231
METRICS=127.0.0.1:9853

# --- the resolvers' namespace -------------------------------------------------------------
lab_ns_new NS_RES res
lab_veth "$NS_RES" r0 "$NS_GW" gw-r || lab_bail "lab: the resolvers' link"
ip -n "$NS_GW" addr add 192.0.2.129/25 dev gw-r &&
	ip -n "$NS_GW" addr add 2001:db8:99::1/64 dev gw-r nodad &&
	for a in $A4 $B4 $C4 $CD4 $D4; do ip -n "$NS_RES" addr add "$a/25" dev r0 || exit 1; done &&
	ip -n "$NS_RES" addr add "$A6/64" dev r0 nodad &&
	ip -n "$NS_RES" route add default via 192.0.2.129 &&
	ip -n "$NS_RES" -6 route add default via 2001:db8:99::1 || lab_bail "lab: resolver addresses"

# server_cert NAME SAN: a certificate signed by the lab's CA.
server_cert()
{
	local d="$LAB_DIR/pki" ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
	cat >"$d/$1.ext" <<-EOF
		basicConstraints = critical, CA:FALSE
		keyUsage = critical, digitalSignature
		extendedKeyUsage = serverAuth
		subjectAltName = $2
	EOF
	{
		openssl req -new "${ec[@]}" -keyout "$d/$1.key" -out "$d/$1.csr" -subj "/CN=$1" \
			-config "$d/ca.cnf" &&
			openssl x509 -req -in "$d/$1.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
				-set_serial "0x$(openssl rand -hex 8)" -days 2 -out "$d/$1.pem" \
				-extfile "$d/$1.ext"
	} >>"$d/openssl.log" 2>&1
}
server_cert dns.a.test "DNS:dns.a.test, IP:$A4, IP:$A6" || lab_bail "lab: A's certificate"
server_cert dns.c.test "DNS:dns.c.test, IP:$CD4" || lab_bail "lab: C's certificate"
server_cert other.test "DNS:other.test, IP:$D4" || lab_bail "lab: D's certificate"

# resolver NAME ANSWER LINES...: an unbound in NS_RES with these interface/tls/data lines.
resolver()
{
	local name=$1 answer=$2 conf="$LAB_DIR/$1.conf"
	shift 2
	{
		lab_unbound_common "$name"
		printf '\t%s\n' "$@"
		printf '\tlocal-data: "www.example.test. 30 A %s"\n' "$answer"
		printf 'remote-control:\n\tcontrol-enable: no\n'
	} >"$conf"
	lab_bg "$NS_RES" "$LAB_DIR/$name.log" unbound -d -c "$conf"
}

SVCB_A="local-data: '_dns.resolver.arpa. 300 IN SVCB 1 dns.a.test. alpn=dot ipv4hint=$A4 ipv6hint=$A6'"
SVCB_D="local-data: '_dns.resolver.arpa. 300 IN SVCB 1 dns.d.test. alpn=dot ipv4hint=$D4'"
SVCB_C="local-data: '_dns.resolver.arpa. 300 IN SVCB 1 dns.c.test. alpn=dot port=853 ipv4hint=$CD4'"
resolver a-plain "$A_PLAIN" "interface: $A4@53" "interface: $A6@53" "$SVCB_A"
resolver a-dot "$A_DOT" "interface: $A4@853" "interface: $A6@853" "tls-port: 853" \
	"tls-service-key: \"$LAB_DIR/pki/dns.a.test.key\"" \
	"tls-service-pem: \"$LAB_DIR/pki/dns.a.test.pem\""
A_DOT_JOB=$LAB_BG_PID
resolver b "$B_PLAIN" "interface: $B4@53"
resolver c-plain "$C_PLAIN" "interface: $C4@53" "$SVCB_C"
resolver c-dot "$C_DOT" "interface: $CD4@853" "tls-port: 853" \
	"tls-service-key: \"$LAB_DIR/pki/dns.c.test.key\"" \
	"tls-service-pem: \"$LAB_DIR/pki/dns.c.test.pem\""
resolver d-plain "$D_PLAIN" "interface: $D4@53" "$SVCB_D"
resolver d-dot "$D_DOT" "interface: $D4@853" "tls-port: 853" \
	"tls-service-key: \"$LAB_DIR/pki/other.test.key\"" \
	"tls-service-pem: \"$LAB_DIR/pki/other.test.pem\""

resolvers_answer()
{
	[ "$(lab_in "$NS_RES" dig +time=1 +tries=1 +short @$A4 www.example.test A)" = "$A_PLAIN" ] &&
		[ "$(lab_in "$NS_RES" dig +time=1 +tries=1 +short @$B4 www.example.test A)" = "$B_PLAIN" ] &&
		[ "$(lab_in "$NS_RES" dig +time=1 +tries=1 +short @$C4 www.example.test A)" = "$C_PLAIN" ] &&
		[ "$(lab_in "$NS_RES" kdig +time=1 +retry=0 +short +tls-ca="$LAB_CA" \
			+tls-hostname=dns.a.test @$A4 www.example.test A)" = "$A_DOT" ] &&
		[ "$(lab_in "$NS_RES" kdig +time=1 +retry=0 +short +tls-ca="$LAB_CA" \
			+tls-hostname=dns.c.test @$CD4 www.example.test A)" = "$C_DOT" ] &&
		[ "$(lab_in "$NS_RES" dig +time=1 +tries=1 +short @$D4 www.example.test A)" = "$D_PLAIN" ] &&
		[ "$(lab_in "$NS_RES" kdig +time=1 +retry=0 +short +tls-ca="$LAB_CA" \
			+tls-hostname=other.test @$D4 www.example.test A)" = "$D_DOT" ]
}
lab_wait_until 100 resolvers_answer || lab_bail "lab: the resolvers did not start"

# The lab itself: unbound 1.17 serves the SVCB record (RFC 9460 presentation format).
lab_dig "$NS_RES" @"$A4" _dns.resolver.arpa SVCB
lab_check_match "lab: A's plain port serves its designation" \
	'_dns\.resolver\.arpa\.[[:space:]]+300[[:space:]]+IN[[:space:]]+SVCB[[:space:]]+1 dns\.a\.test\. alpn="?dot"? ipv4hint=192\.0\.2\.130' \
	"$LAB_OUT"
# Logs from here on: what the resolvers saw before is the lab's own checking.
for r in a-plain a-dot b c-plain c-dot d-plain d-dot; do
	: >"$LAB_DIR/$r.lines"
	wc -l <"$LAB_DIR/$r.log" >"$LAB_DIR/$r.mark"
done
# seen NAME: the query lines resolver NAME logged since the mark.
seen()
{
	tail -n +"$(($(cat "$LAB_DIR/$1.mark") + 1))" "$LAB_DIR/$1.log" | grep ' IN$' |
		sed -E 's/.*info: [^ ]+ //' || true
}

# dnstap, when its tools are here: the hop to a designated resolver is a FORWARDER message.
TAP=()
if command -v fstrm_capture >/dev/null && command -v dnstap-ldns >/dev/null; then
	chmod o+x "$LAB_DIR"
	mkdir -m 755 "$LAB_DIR/tap"
	lab_bg "$NS_GW" "$LAB_DIR/fstrm_capture.log" fstrm_capture -t protobuf:dnstap.Dnstap \
		-u "$LAB_DIR/tap/sock" -w "$LAB_DIR/tap/capture.fstrm"
	CAPTURE=$LAB_BG_PID
	LAB_WAIT_PID=$CAPTURE lab_wait_until 50 test -S "$LAB_DIR/tap/sock" ||
		lab_bail "fstrm_capture did not start"
	chmod 777 "$LAB_DIR/tap/sock"
	TAP=(--dnstap "$LAB_DIR/tap/sock")
fi

lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" \
	--upstream asked --metrics "$METRICS" --query-log "${TAP[@]}" || lab_finish

# ask SERVER [DIG-ARGS]: www.example.test A from the client; the answer's address and server.
ask()
{
	local s=$1
	shift
	lab_dig "$NS_CLIENT" @"$s" www.example.test A "$@"
	lab_dig_summary A
}

# verified_or_settled ADDR: the discovery of ADDR is over (verified, or refused, or none).
settled()
{
	grep -Eq "ddr: $1(:| designates .*(verified|REJECTED))" "$DOTGW_LOG"
}

# 1. The first query to each asked address starts discovery; it is answered meanwhile by the
#    configured upstream, never by the asked address in plaintext.
lab_check_eq "A, first query (discovery under way): the configured upstream" \
	"NOERROR $LAB_UP_A from $A4#53 (UDP)" "$(ask $A4)"
ask $B4 >/dev/null
ask $C4 >/dev/null
ask $D4 >/dev/null
lab_ok "A's designation verified" lab_wait_until 50 grep -q "ddr: $A4 designates $A4@853#dns.a.test: verified" "$DOTGW_LOG"
lab_ok "C's designation settled" lab_wait_until 50 settled $C4
lab_ok "B settled (no designation)" lab_wait_until 50 settled $B4
lab_ok "D's designation settled" lab_wait_until 50 settled $D4

# 2. A: over DoT to A's designated resolver, UDP and TCP clients alike.
lab_check_eq "A, UDP client: answered by A's DoT resolver" "NOERROR $A_DOT from $A4#53 (UDP)" "$(ask $A4)"
lab_check_eq "A, TCP client: answered by A's DoT resolver" "NOERROR $A_DOT from $A4#53 (TCP)" "$(ask $A4 +tcp)"
lab_check_eq "A, second UDP query (no shared cache): A's DoT resolver" "NOERROR $A_DOT from $A4#53 (UDP)" "$(ask $A4)"

# 3. B: no designation: the configured upstream.
lab_check_eq "B, UDP: the configured upstream" "NOERROR $LAB_UP_A from $B4#53 (UDP)" "$(ask $B4)"
lab_check_eq "B, TCP: the configured upstream" "NOERROR $LAB_UP_A from $B4#53 (TCP)" "$(ask $B4 +tcp)"

# 4. C: its designated resolver's certificate does not cover C's address: rejected, logged.
lab_check_match "C's designation rejected at warning level, with the address and reason" \
	"^warn: ddr: $C4 designates $CD4@853#dns.c.test: REJECTED" "$(cat "$DOTGW_LOG")"
lab_check_match "...and TLS says why: the IP address does not match" \
	"^warn: upstream $CD4@853#dns.c.test: authentication failed: IP address mismatch" "$(cat "$DOTGW_LOG")"
lab_check_eq "C, UDP: the configured upstream" "NOERROR $LAB_UP_A from $C4#53 (UDP)" "$(ask $C4)"
lab_check_eq "C, TCP: the configured upstream" "NOERROR $LAB_UP_A from $C4#53 (TCP)" "$(ask $C4 +tcp)"

# 4b. D: the certificate covers D's address but not the designated name: rejected too (OpenSSL
#     requires the host name and the IP address each).
lab_check_match "D's designation rejected" \
	"^warn: ddr: $D4 designates $D4@853#dns.d.test: REJECTED" "$(cat "$DOTGW_LOG")"
lab_check_match "...and TLS says why: the host name does not match" \
	"^warn: upstream $D4@853#dns.d.test: authentication failed: [Hh]ostname mismatch" "$(cat "$DOTGW_LOG")"
lab_check_eq "D, UDP: the configured upstream" "NOERROR $LAB_UP_A from $D4#53 (UDP)" "$(ask $D4)"

# 5. IPv6: A's IPv6 address designates the same resolver, verified for that address.
ask "$A6" >/dev/null
lab_ok "A's IPv6 designation verified" lab_wait_until 50 grep -q "ddr: $A6 designates \[$A6\]@853#dns.a.test: verified" "$DOTGW_LOG"
lab_check_eq "A over IPv6, UDP: A's DoT resolver" "NOERROR $A_DOT from $A6#53 (UDP)" "$(ask "$A6")"

# 6. What each server saw.
lab_check_eq "A's plain port saw only the SVCB question" \
	"_dns.resolver.arpa. SVCB IN" "$(seen a-plain | sort -u)"
lab_check_num "A's DoT resolver got the client's queries" \
	"$(seen a-dot | grep -c 'www\.example\.test\. A IN')" -ge 4
lab_check_eq "B's plain port saw only the SVCB question" \
	"_dns.resolver.arpa. SVCB IN" "$(seen b | sort -u)"
lab_check_eq "C's plain port saw only the SVCB question" \
	"_dns.resolver.arpa. SVCB IN" "$(seen c-plain | sort -u)"
lab_check_eq "C's designated resolver got no query (the handshake failed first)" "" "$(seen c-dot)"
lab_check_eq "D's plain port saw only the SVCB question" \
	"_dns.resolver.arpa. SVCB IN" "$(seen d-plain | sort -u)"
lab_check_eq "D's DoT server got no query (the handshake failed first)" "" "$(seen d-dot)"

# 7. The query log names where each went; the metrics show each asked address.
lab_run "$NS_GW" curl -s "http://$METRICS/metrics"
lab_check_match "metrics: A verified" \
	"dotgw_ddr_resolver_info\{asked=\"$A4\",designated=\"$A4@853#dns.a.test\",state=\"verified\"\} 1" "$LAB_OUT"
lab_check_match "metrics: B none" "dotgw_ddr_resolver_info\{asked=\"$B4\",designated=\"\",state=\"none\"\} 1" "$LAB_OUT"
lab_check_match "metrics: C rejected" "dotgw_ddr_resolver_info\{asked=\"$C4\",designated=\"\",state=\"rejected\"\} 1" "$LAB_OUT"
lab_check_match "metrics: A's queries counted" "dotgw_ddr_queries_total\{asked=\"$A4\"\} [3-9]" "$LAB_OUT"
lab_check_match "debug log: where a query went" \
	"to $A4@853#dns.a.test, the designated resolver of the address asked" "$(cat "$DOTGW_LOG")"
lab_check_match "query log: answered by A's designated resolver, over TCP too" \
	"query $LAB_CLIENT4:[0-9]+ www\.example\.test\. 1 NOERROR tcp $A4@853#dns\.a\.test" "$(cat "$DOTGW_LOG")"
lab_check_match "query log: B's query answered by the configured upstream" \
	"query $LAB_CLIENT4:[0-9]+ www\.example\.test\. 1 NOERROR (udp|tcp) ($LAB_UP4@853#$LAB_AUTH_NAME|cache)" "$(cat "$DOTGW_LOG")"

# 8. A reload forgets every designation (the trust anchors may have changed): asked again.
kill -HUP "$DOTGW_PID"
lab_ok "reloaded" lab_wait_until 50 grep -q 'reloaded' "$DOTGW_LOG"
lab_check_eq "after the reload, A's first query: the configured upstream (asking again)" \
	"NOERROR $LAB_UP_A from $A4#53 (UDP)" "$(ask $A4)"
verified_twice()
{
	[ "$(grep -c "ddr: $A4 designates $A4@853#dns.a.test: verified" "$DOTGW_LOG")" -ge 2 ]
}
lab_ok "after the reload: A's designation verified again" lab_wait_until 50 verified_twice
lab_check_eq "after the reload, A: A's DoT resolver" "NOERROR $A_DOT from $A4#53 (UDP)" "$(ask $A4)"

lab_stop_dotgw
lab_check_eq "dotgw exits 0 on SIGTERM" 0 "$?"
if [ ${#TAP[@]} -gt 0 ]; then
	lab_bg_stop "$CAPTURE" INT
	ip netns exec "$NS_GW" dnstap-ldns -q -r "$LAB_DIR/tap/capture.fstrm" >"$LAB_DIR/tap/read.txt" 2>&1
	lab_check_num "dnstap: the queries to A's designated resolver (FORWARDER_QUERY, TCP)" \
		"$(grep -c " FQ $A4 TCP " "$LAB_DIR/tap/read.txt")" -ge 3
	lab_check_num "dnstap: ...and its answers (FORWARDER_RESPONSE)" \
		"$(grep -c " FR $A4 TCP " "$LAB_DIR/tap/read.txt")" -ge 3
	ip netns exec "$NS_GW" dnstap-ldns -y -r "$LAB_DIR/tap/capture.fstrm" >"$LAB_DIR/tap/read.yaml" 2>&1
	FWD=$(grep -cE 'type: FORWARDER_(QUERY|RESPONSE)' "$LAB_DIR/tap/read.yaml")
	lab_check_num "dnstap: forwarder messages (A over IPv4 and IPv6)" "$FWD" -ge 8
	lab_check_eq "dnstap: every forwarder message names port 853" "$FWD" \
		"$(grep -c 'response_port: 853$' "$LAB_DIR/tap/read.yaml")"
	lab_check_eq "dnstap: no forwarder message names B, C, C's or D's designated resolver" "" \
		"$(grep -E " F[QR] ($B4|$C4|$CD4|$D4) " "$LAB_DIR/tap/read.txt")"
else
	lab_log "fstrm_capture or dnstap-ldns missing: dnstap checks skipped"
fi

# 9. nfqueue mode (UDP from the queue, answers injected): the same routing. (Answers of the
#    configured upstream may come from its cache; a designated resolver's never do.)
#    With --asked-max 1, asking B makes the table forget A (least recently used). The client's
#    IPv6 address is in a group with upstreams of its own: they win over the asked address.
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --mode nfqueue --queues 1 --scope gateway \
	--interface "$LAB_GW_IF_CLIENT" --upstream asked --asked-max 1 \
	--group "v6=$LAB_CLIENT6/128" --group-upstreams v6=1 || lab_finish
for i in 1 2; do
	lab_check_eq "nfqueue, group with its own upstreams, query $i to A's IPv6 address: the upstream" \
		"NOERROR $LAB_UP_A from $A6#53 (UDP)" "$(ask "$A6")"
done
lab_notok "...and A's IPv6 address is never asked for a designation" \
	grep -q "ddr: asking $A6" "$DOTGW_LOG"
lab_check_eq "nfqueue, A, first query: the configured upstream" \
	"NOERROR $LAB_UP_A from $A4#53 (UDP)" "$(ask $A4)"
lab_ok "nfqueue: A's designation verified" lab_wait_until 50 grep -q "ddr: $A4 designates $A4@853#dns.a.test: verified" "$DOTGW_LOG"
lab_check_eq "nfqueue, A, UDP: A's DoT resolver" "NOERROR $A_DOT from $A4#53 (UDP)" "$(ask $A4)"
lab_check_eq "nfqueue, B, UDP: the configured upstream" "NOERROR $LAB_UP_A from $B4#53 (UDP)" "$(ask $B4)"
lab_ok "--asked-max 1: B's entry made the table forget A" \
	grep -q "ddr: table full (--asked-max 1): $A4 forgotten" "$DOTGW_LOG"
lab_check_eq "nfqueue, A forgotten: the configured upstream (asking again)" \
	"NOERROR $LAB_UP_A from $A4#53 (UDP)" "$(ask $A4)"
lab_ok "nfqueue: A's designation verified again" lab_wait_until 50 verified_twice
lab_check_eq "nfqueue, A, UDP: A's DoT resolver again" "NOERROR $A_DOT from $A4#53 (UDP)" "$(ask $A4)"

# 10. A's designated resolver goes away: its queries go to the configured upstream at once
#    (never to A's plain port), and after DDR_MAX_FAILS failures in a row it is dropped.
lab_bg_stop "$A_DOT_JOB"
for i in 1 2 3 4; do
	lab_check_eq "A's DoT resolver gone, query $i: the configured upstream" \
		"NOERROR $LAB_UP_A from $A4#53 (UDP)" "$(ask $A4)"
done
lab_check_match "A's designated resolver dropped after 3 failures, logged" \
	"^warn: ddr: $A4: designated resolver $A4@853#dns.a.test failed 3 queries in a row" \
	"$(cat "$DOTGW_LOG")"
lab_check_eq "A's plain port still saw only SVCB questions" \
	"_dns.resolver.arpa. SVCB IN" "$(seen a-plain | sort -u)"
lab_stop_dotgw
lab_check_eq "nfqueue: dotgw exits 0 on SIGTERM" 0 "$?"
lab_finish
