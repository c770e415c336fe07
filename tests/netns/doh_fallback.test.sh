#!/bin/bash
# doh_fallback.test.sh - a DoT upstream whose port 853 becomes reachable again after dotgw fell
# back to its DNS-over-HTTPS fallback: within the re-probe interval (--doh-reprobe 2 here; 60 s
# by default) dotgw tries 853, logs the move back, and later queries reach the upstream over
# DoT, not HTTPS. While 853 is still dropped, a query that starts a re-probe goes over DoH at
# once (the re-probe takes none). On each transport a second connection resumes the TLS session (the fallback
# keeps its own session), and the metrics count queries, answers, handshakes and resumptions
# per upstream and transport. (The fallback itself, and --doh-fallback no, are in doh.test.sh.)
#
#   client --- gw-c [gateway: dotgw, DoT upstream] gw-u --- upstream 203.0.113.2
#                                                           unbound: DoT @853, DoH @443;
#                                                           nft: 853 dropped, then not
#                                                  gw-d --- decoy 192.0.2.53 (must see nothing)
#
# Usage: doh_fallback.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"
LAB_UP_EXTRA_CONF="	interface: $LAB_UP4@443
	https-port: 443
	http-endpoint: \"/dns-query\"
	extended-statistics: yes"
lab_setup

lab_require_upstream_doh

printf '%s\n' 'table inet block853 {' 'chain input {' 'type filter hook input priority -10;' \
	'tcp dport 853 counter drop' '}' '}' >"$LAB_DIR/block853.nft"
lab_in "$NS_UP" nft -f "$LAB_DIR/block853.nft" || lab_bail "blocking 853"
# scrape: dotgw's /metrics into $LAB_DIR/scrape.txt; value NAME-WITH-LABELS: one sample
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

UP="$LAB_UP4@853#$LAB_AUTH_NAME"
DOT="upstream=\"$UP\",transport=\"dot\""
DOH="upstream=\"$UP\",transport=\"doh\""

lab_upstream_reset # the kdig check above was an HTTPS query
# --idle-timeout 100 and no standby: a query after a pause opens a new connection
lab_start_dotgw --mode tproxy --scope both --interface "$LAB_GW_IF_CLIENT" --ca-file "$LAB_CA" \
	--log-level debug --cache-size 0 --upstream "$LAB_UP4#$LAB_AUTH_NAME" --doh-reprobe 2 \
	--idle-timeout 100 --standby 0 --metrics 127.0.0.1:9853 || lab_finish
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" q0.bench.test A
lab_check_eq "853 blocked: answered (over DoH)" "NOERROR 203.0.113.99 from $LAB_DECOY4#53 (UDP)" \
	"$(lab_dig_summary A)"
lab_sleep 0.4 # the DoH connection closes idle
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" q1.bench.test A
lab_check_eq "853 blocked: the next query too, on a new DoH connection" \
	"NOERROR 203.0.113.99 from $LAB_DECOY4#53 (UDP)" "$(lab_dig_summary A)"
lab_check_num "853 blocked: the upstream counted HTTPS queries" "$(lab_upstream_stat num.query.https)" -ge 2
scrape
lab_check_eq "853 blocked: metrics: both answers over DoH" 2 \
	"$(value "dotgw_upstream_transport_answers_total{$DOH}")"
lab_check_eq "853 blocked: metrics: none over DoT" 0 \
	"$(value "dotgw_upstream_transport_answers_total{$DOT}")"
lab_check_eq "853 blocked: metrics: no DoT handshake" 0 \
	"$(value "dotgw_upstream_transport_handshakes_total{$DOT}")"
lab_check_num "853 blocked: metrics: two DoH handshakes" \
	"$(value "dotgw_upstream_transport_handshakes_total{$DOH}")" -ge 2
lab_check_num "853 blocked: the second DoH connection resumed the TLS session" \
	"$(value "dotgw_upstream_transport_resumptions_total{$DOH}")" -ge 1
lab_check_eq "853 blocked: metrics: no DoH stream errors" 0 \
	"$(value "dotgw_upstream_doh_errors_total{upstream=\"$UP\"}")"
dot_queries=$(value "dotgw_upstream_transport_queries_total{$DOT}") # q0's first try
lab_sleep 2.2 # --doh-reprobe 2: the next query starts a re-probe of 853, still dropped
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" q2.bench.test A +tries=1 +time=5
lab_check_eq "853 blocked, re-probe due: the query is answered over DoH, not held by the re-probe" \
	"NOERROR 203.0.113.99 from $LAB_DECOY4#53 (UDP)" "$(lab_dig_summary A)"
lab_ok "853 blocked: the re-probe timed out meanwhile" \
	lab_wait_until 50 grep -q 'port 853 still unreachable' "$DOTGW_LOG"
scrape
lab_check_eq "853 blocked: metrics: no query went to the re-probe (DoT)" "$dot_queries" \
	"$(value "dotgw_upstream_transport_queries_total{$DOT}")"
lab_check_eq "853 blocked: metrics: 3 answers over DoH" 3 \
	"$(value "dotgw_upstream_transport_answers_total{$DOH}")"
lab_check_match "853 blocked: the switch names the re-probe interval (--doh-reprobe)" \
	"using its DNS-over-HTTPS fallback .*trying 853 again every 2 s" "$(cat "$DOTGW_LOG")"

lab_in "$NS_UP" nft delete table inet block853 || lab_bail "unblocking 853"
lab_log "853 unblocked; a query every 0.5 s until dotgw moves back (at most 20 s)"
back=0
for ((i = 1; i <= 40; i++)); do
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" "w$i.bench.test" A
	if grep -q 'port 853 works again; back to DNS-over-TLS' "$DOTGW_LOG"; then
		back=1
		break
	fi
	lab_sleep 0.5
done
lab_check_eq "853 back: dotgw logs the move back to DoT" 1 "$back"
lab_upstream_reset
scrape
dot_answers=$(value "dotgw_upstream_transport_answers_total{$DOT}")
dot_handshakes=$(value "dotgw_upstream_transport_handshakes_total{$DOT}")
for ((i = 0; i < 4; i++)); do
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" "after$i.bench.test" A
	lab_check_eq "853 back: query $i answered" "NOERROR 203.0.113.99 from $LAB_DECOY4#53 (UDP)" \
		"$(lab_dig_summary A)"
	lab_sleep 0.4 # the DoT connection closes idle: the next one resumes
done
lab_check_num "853 back: the upstream got them over TLS" "$(lab_upstream_stat num.query.tls)" -ge 4
lab_check_eq "853 back: ...none over HTTPS" 0 "$(lab_upstream_stat num.query.https)"
scrape
lab_check_eq "853 back: metrics: the 4 answers over DoT" $((dot_answers + 4)) \
	"$(value "dotgw_upstream_transport_answers_total{$DOT}")"
lab_check_num "853 back: metrics: new DoT connections" \
	"$(value "dotgw_upstream_transport_handshakes_total{$DOT}")" -ge $((dot_handshakes + 3))
lab_check_num "853 back: ...resumed the DoT session" \
	"$(value "dotgw_upstream_transport_resumptions_total{$DOT}")" -ge 3
lab_check_eq "nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_stop_dotgw
lab_check_eq "dotgw exits 0 on SIGTERM" 0 "$?"
lab_finish
