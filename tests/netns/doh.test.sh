#!/bin/bash
# doh.test.sh - DNS-over-HTTPS upstreams (--upstream https://ADDR[:PORT]/PATH#NAME): clients'
# queries, UDP and TCP, IPv4 and IPv6, reach the upstream as HTTP/2 POSTs (its statistics count
# them as HTTPS queries, and none over DoT), the decoy sees nothing; a wrong authentication
# name or pin fails closed (SERVFAIL, nothing in plaintext, no HTTPS query); a server that
# allows only 2 concurrent streams answers every query of a dnsperf load; a second DoH
# connection resumes the TLS session, and the metrics count per upstream and transport; unbound
# reloaded under load closes its connections without an HTTP/2 GOAWAY (1.17 never sends one),
# and no query is lost; a silent DoH
# connection is probed with an HTTP/2 PING (not a DNS query) and closed; a DoT upstream whose
# port 853 is dropped on the path is answered through its DoH fallback (--doh-fallback no:
# SERVFAIL).
#
#   client --- gw-c [gateway: dotgw, DoH upstream] gw-u --- upstream 203.0.113.2, 2001:db8:113::2
#                                                           unbound: DoT @853, DoH @443
#                                                           (/dns-query, certificate dot.test)
#                                                  gw-d --- decoy 192.0.2.53 (must see nothing)
#
# Usage: doh.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf base64
lab_require_dotgw "${1:-}"
LAB_UP_EXTRA_CONF="	interface: $LAB_UP4@443
	interface: $LAB_UP6@443
	https-port: 443
	http-endpoint: \"/dns-query\"
	http-max-streams: 2
	extended-statistics: yes"
lab_setup

lab_require_upstream_doh

spki_pin()
{
	openssl x509 -pubkey -noout -in "$1" | openssl pkey -pubin -outform der |
		openssl dgst -sha256 -binary | base64
}

PIN_GOOD=$(spki_pin "$LAB_SERVER_CERT")
PIN_OTHER=$(spki_pin "$LAB_OTHER_CA")
if [ -z "$PIN_GOOD" ] || [ "$PIN_GOOD" = "$PIN_OTHER" ]; then
	lab_bail "computing SPKI pins"
fi

ARGS=(--mode tproxy --scope both --interface "$LAB_GW_IF_CLIENT" --ca-file "$LAB_CA"
	--log-level debug --cache-size 0)

# answered LABEL SERVER TYPE EXPECTED [+tcp]
answered()
{
	local proto=UDP
	[ -n "${5:-}" ] && proto=TCP
	lab_dig "$NS_CLIENT" @"$2" www.example.test "$3" ${5:+"$5"}
	lab_check_eq "$1" "NOERROR $4 from $2#53 ($proto)" "$(lab_dig_summary "$3")"
}

# scrape: dotgw's /metrics (--metrics 127.0.0.1:9853) into $LAB_DIR/scrape.txt;
# value NAME-WITH-LABELS: one sample's value from it (empty when absent)
scrape()
{
	ip netns exec "$NS_GW" timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9853 &&
		printf "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3 && cat <&3' |
		sed '1,/^\r$/d' >"$LAB_DIR/scrape.txt"
}

value()
{
	awk -v k="$1" '$1 == k { print $2 }' "$LAB_DIR/scrape.txt"
}

# working UPSTREAM SOURCE [--pin PIN]: a DoH-only upstream answers the four kinds of client.
working()
{
	local up=$1 https dot
	shift
	lab_decoy_reset
	lab_upstream_reset
	lab_start_dotgw "${ARGS[@]}" --upstream "$up" "$@" || return
	answered "$up: UDP A over IPv4" "$LAB_DECOY4" A "$LAB_UP_A"
	answered "$up: TCP A over IPv4" "$LAB_DECOY4" A "$LAB_UP_A" +tcp
	answered "$up: UDP AAAA over IPv6" "$LAB_DECOY6" AAAA "$LAB_UP_AAAA"
	answered "$up: TCP AAAA over IPv6" "$LAB_DECOY6" AAAA "$LAB_UP_AAAA" +tcp
	https=$(lab_upstream_stat num.query.https)
	dot=$(lab_upstream_stat num.query.tls)
	lab_check_num "$up: the upstream counted the queries as HTTPS ($https)" "$https" -ge 4
	lab_check_num "$up: ...and none over DoT ($dot TLS, $https HTTPS)" "$dot" -eq "$https"
	lab_check_eq "$up: nothing reached the decoy" 0 "$(lab_decoy_count)"
	lab_check_match "$up: dotgw's log shows the HTTP/2 upstream" "upstream https://" \
		"$(cat "$DOTGW_LOG")"
	lab_stop_dotgw
	lab_check_eq "$up: dotgw exits 0 on SIGTERM" 0 "$?"
}

# refused LABEL ARGS...: the DoH upstream cannot be authenticated: SERVFAIL, nothing sent.
refused()
{
	local label=$1
	shift
	lab_decoy_reset
	lab_upstream_reset
	lab_start_dotgw "${ARGS[@]}" "$@" || return
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A +tries=1 +time=5
	lab_check_eq "$label: UDP SERVFAIL" SERVFAIL "$(lab_dig_status)"
	lab_dig "$NS_CLIENT" @"$LAB_DECOY6" www.example.test AAAA +tcp +tries=1 +time=5
	lab_check_eq "$label: TCP SERVFAIL" SERVFAIL "$(lab_dig_status)"
	lab_check_eq "$label: no query reached the upstream" 0 "$(lab_upstream_queries)"
	lab_check_eq "$label: nothing reached the decoy" 0 "$(lab_decoy_count)"
	lab_stop_dotgw
	lab_check_eq "$label: dotgw exits 0 on SIGTERM" 0 "$?"
}

lab_log "DoH-only upstreams"
working "https://$LAB_UP4/dns-query#$LAB_AUTH_NAME" --pin "$PIN_GOOD"
working "https://[$LAB_UP6]:443/dns-query#$LAB_AUTH_NAME"

lab_log "DoH-only: each new connection resumes the TLS session; metrics per upstream and transport"
# --idle-timeout 100 and no standby: each query after a pause opens a new connection
lab_start_dotgw "${ARGS[@]}" --upstream "https://$LAB_UP4/dns-query#$LAB_AUTH_NAME" \
	--idle-timeout 100 --standby 0 --metrics 127.0.0.1:9853 || lab_finish
for i in 0 1 2; do
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" "res$i.bench.test" A
	lab_check_eq "resume: query $i answered" "NOERROR 203.0.113.99 from $LAB_DECOY4#53 (UDP)" \
		"$(lab_dig_summary A)"
	lab_sleep 0.4 # the connection closes idle meanwhile
done
scrape
up="https://$LAB_UP4:443/dns-query#$LAB_AUTH_NAME"
doh="upstream=\"$up\",transport=\"doh\""
lab_check_num "resume: a DoH handshake per query" \
	"$(value "dotgw_upstream_transport_handshakes_total{$doh}")" -ge 3
lab_check_num "resume: ...the later ones resumed the TLS session" \
	"$(value "dotgw_upstream_transport_resumptions_total{$doh}")" -ge 2
lab_check_eq "metrics: queries sent over DoH" 3 "$(value "dotgw_upstream_transport_queries_total{$doh}")"
lab_check_eq "metrics: answers over DoH" 3 "$(value "dotgw_upstream_transport_answers_total{$doh}")"
lab_check_eq "metrics: a DoH-only upstream has no DoT series" "" \
	"$(value "dotgw_upstream_transport_answers_total{upstream=\"$up\",transport=\"dot\"}")"
lab_check_eq "metrics: no DoH stream errors for it" 0 \
	"$(value "dotgw_upstream_doh_errors_total{upstream=\"$up\"}")"
lab_check_eq "metrics: the process-wide DoH answers stay" 3 "$(value dotgw_doh_answers_total)"
lab_stop_dotgw
lab_check_eq "resume: dotgw exits 0 on SIGTERM" 0 "$?"
lab_check_num "resume: the stats line counts the resumptions" "$(lab_dotgw_stat upstream_resumed)" -ge 2
lab_check_match "resume: ...and the upstream's line, per transport" \
	"upstream $up: .* doh_handshakes=[3-9] doh_resumed=[2-9] doh_answers=3" "$(cat "$DOTGW_LOG")"

lab_log "authentication fails closed"
refused "wrong name" --upstream "https://$LAB_UP4/dns-query#wrong.test"
refused "wrong pin" --upstream "https://$LAB_UP4/dns-query#$LAB_AUTH_NAME" --pin "$PIN_OTHER"

lab_log "http-max-streams 2 under load: every query answered"
N=3000
for ((i = 0; i < N; i++)); do
	echo "q$i.bench.test A"
done >"$LAB_DIR/names.txt"
lab_upstream_reset
lab_start_dotgw "${ARGS[@]}" --upstream "https://$LAB_UP4/dns-query#$LAB_AUTH_NAME" || lab_finish
out=$(lab_in "$NS_CLIENT" timeout 60 dnsperf -s "$LAB_DECOY4" -d "$LAB_DIR/names.txt" -n 1 \
	-Q 2000 -c 4 -t 10 2>&1)
lab_check_match "dnsperf: every query answered" "Queries completed: +$N \(100\.00%\)" "$out"
lab_check_match "dnsperf: ...all NOERROR" "Response codes: +NOERROR $N \(100\.00%\)" "$out"
lab_check_num "the upstream received them over HTTPS" "$(lab_upstream_stat num.query.https)" -ge "$N"
lab_check_eq "nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_stop_dotgw
lab_check_eq "dotgw exits 0 on SIGTERM" 0 "$?"

lab_log "the server reloaded under load (its connections close, no GOAWAY): no query lost"
N=2000
for ((i = 0; i < N; i++)); do
	echo "r$i.bench.test A"
done >"$LAB_DIR/names-reload.txt"
lab_start_dotgw "${ARGS[@]}" --upstream "https://$LAB_UP4/dns-query#$LAB_AUTH_NAME" \
	--metrics 127.0.0.1:9853 || lab_finish
lab_bg "$NS_CLIENT" "$LAB_DIR/reload.out" dnsperf -s "$LAB_DECOY4" -d "$LAB_DIR/names-reload.txt" \
	-n 1 -Q 500 -c 4 -t 10
load=$LAB_BG_PID
lab_sleep 1.5
lab_ok "reload: unbound-control reload" \
	lab_in "$NS_UP" timeout 10 unbound-control -q -c "$LAB_UP_CONF" reload
wait "$load"
lab_bg_forget "$load"
out=$(cat "$LAB_DIR/reload.out")
lab_check_match "reload: every query answered" "Queries completed: +$N \(100\.00%\)" "$out"
lab_check_match "reload: ...all NOERROR" "Response codes: +NOERROR $N \(100\.00%\)" "$out"
# unbound 1.17 deletes its HTTP/2 sessions on reload and stop without a GOAWAY (its source has
# no nghttp2_submit_goaway): the connections just close, and dotgw sends their queries in flight
# again (how many were in flight at the close varies from run to run, 0 included)
scrape
lab_check_eq "reload: unbound sent no GOAWAY (it closed the connection)" 0 \
	"$(value "dotgw_upstream_doh_goaways_total{upstream=\"$up\"}")"
lab_stop_dotgw
lab_check_eq "reload: dotgw exits 0 on SIGTERM" 0 "$?"
lab_check_num "reload: dotgw connected again after the reload (TLS handshakes)" \
	"$(lab_dotgw_stat upstream_handshakes)" -ge 2

lab_log "a DoH connection that goes silent: probed with an HTTP/2 PING, then closed"
lab_start_dotgw "${ARGS[@]}" --upstream "https://$LAB_UP4/dns-query#$LAB_AUTH_NAME" || lab_finish
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" s0.bench.test A
lab_check_eq "silent: the first query is answered" \
	"NOERROR 203.0.113.99 from $LAB_DECOY4#53 (UDP)" "$(lab_dig_summary A)"
printf '%s\n' 'table inet mute443 {' 'chain output {' 'type filter hook output priority -10;' \
	'tcp sport 443 drop' '}' '}' >"$LAB_DIR/mute443.nft"
lab_in "$NS_UP" nft -f "$LAB_DIR/mute443.nft" || lab_bail "muting the upstream's port 443"
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" s1.bench.test A +tries=1 +time=6
lab_check_eq "silent: SERVFAIL, nothing in plaintext" SERVFAIL "$(lab_dig_status)"
lab_check_match "silent: dotgw pinged the connection (HTTP/2 PING, not a DNS probe)" \
	"pinging the connection" "$(cat "$DOTGW_LOG")"
lab_check_match "silent: ...and closed it after --stall-timeout" \
	"no answer for [0-9]+ ms with 1 queries in flight, closing" "$(cat "$DOTGW_LOG")"
lab_check_nomatch "silent: no DNS probe was sent" "probing the connection" "$(cat "$DOTGW_LOG")"
lab_in "$NS_UP" nft delete table inet mute443
lab_check_eq "silent: nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_stop_dotgw
lab_check_eq "silent: dotgw exits 0 on SIGTERM" 0 "$?"

lab_log "DoT upstream with port 853 dropped on the path: its DoH fallback answers"
printf '%s\n' 'table inet block853 {' 'chain input {' 'type filter hook input priority -10;' \
	'tcp dport 853 counter drop' '}' '}' >"$LAB_DIR/block853.nft"
lab_in "$NS_UP" nft -f "$LAB_DIR/block853.nft" || lab_bail "blocking 853 in the upstream's namespace"
lab_decoy_reset
lab_upstream_reset
lab_start_dotgw "${ARGS[@]}" --upstream "$LAB_UP4#$LAB_AUTH_NAME" || lab_finish
bad=0
for ((i = 0; i < 6; i++)); do
	proto=UDP
	flag=
	if [ $((i % 2)) = 1 ]; then
		proto=TCP
		flag=+tcp
	fi
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" "q$i.bench.test" A $flag
	got=$(lab_dig_summary A)
	if [ "$got" != "NOERROR 203.0.113.99 from $LAB_DECOY4#53 ($proto)" ]; then
		bad=$((bad + 1))
		lab_log "query $i: $got"
	fi
done
lab_check_eq "blocked 853: all 6 queries answered by the upstream (UDP and TCP)" 0 "$bad"
lab_check_num "blocked 853: the upstream counted them as HTTPS" "$(lab_upstream_stat num.query.https)" -ge 6
lab_check_match "blocked 853: the 853 packets were dropped" "packets [1-9]" \
	"$(lab_in "$NS_UP" nft list table inet block853)"
lab_check_eq "blocked 853: the switch is logged once" 1 \
	"$(grep -c 'using its DNS-over-HTTPS fallback at port 443 (/dns-query)' "$DOTGW_LOG")"
lab_check_eq "blocked 853: nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_stop_dotgw
lab_check_eq "blocked 853: dotgw exits 0 on SIGTERM" 0 "$?"

lab_decoy_reset
lab_start_dotgw "${ARGS[@]}" --upstream "$LAB_UP4#$LAB_AUTH_NAME" --doh-fallback no || lab_finish
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A +tries=1 +time=5
lab_check_eq "blocked 853, --doh-fallback no: SERVFAIL" SERVFAIL "$(lab_dig_status)"
lab_check_eq "blocked 853, --doh-fallback no: nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_stop_dotgw
lab_check_eq "--doh-fallback no: dotgw exits 0 on SIGTERM" 0 "$?"

lab_finish
