#!/bin/bash
# doh_resend.test.sh - a DoH request that fails at the HTTP level is sent once more, to another
# upstream, within the query's deadline, instead of SERVFAIL at once: the first upstream is
# the lab's unbound at a path it does not serve (404), the second the same server at its DoH
# path, then over DoT. Every query is answered by the second, and counted
# (dotgw_upstream_doh_errors_total and _resent_total of the first). With the 404 upstream
# alone the answer is SERVFAIL, as before, and nothing is resent; nothing ever reaches the
# decoy.
#
#   client --- gw-c [gateway: dotgw] gw-u --- upstream 203.0.113.2
#                                             unbound: DoT @853, DoH @443 at /dns-query only
#                                    gw-d --- decoy 192.0.2.53 (must see nothing)
#
# Usage: doh_resend.test.sh PATH-TO-DOTGW

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

ARGS=(--mode tproxy --scope both --interface "$LAB_GW_IF_CLIENT" --ca-file "$LAB_CA"
	--log-level debug --cache-size 0 --metrics 127.0.0.1:9853)
BAD="https://$LAB_UP4:443/nothing-here#$LAB_AUTH_NAME"
GOOD_DOH="https://$LAB_UP4:443/dns-query#$LAB_AUTH_NAME"
GOOD_DOT="$LAB_UP4@853#$LAB_AUTH_NAME"

# resent SECOND SECOND-TRANSPORT: the 404 upstream first, SECOND after it
resent()
{
	local second=$1 tr=$2 i flag proto
	lab_decoy_reset
	lab_start_dotgw "${ARGS[@]}" --upstream "$BAD" --upstream "$second" || return
	for ((i = 0; i < 4; i++)); do
		flag=''
		proto=UDP
		if [ $((i % 2)) = 1 ]; then
			flag=+tcp
			proto=TCP
		fi
		lab_dig "$NS_CLIENT" @"$LAB_DECOY4" "$tr$i.bench.test" A +tries=1 +time=5 $flag
		lab_check_eq "404 then $tr: query $i answered by the second upstream" \
			"NOERROR 203.0.113.99 from $LAB_DECOY4#53 ($proto)" "$(lab_dig_summary A)"
	done
	scrape
	lab_check_eq "404 then $tr: the 404 upstream's errors counted" 4 \
		"$(value "dotgw_upstream_doh_errors_total{upstream=\"$BAD\"}")"
	lab_check_eq "404 then $tr: ...each query sent once more" 4 \
		"$(value "dotgw_upstream_doh_resent_total{upstream=\"$BAD\"}")"
	lab_check_eq "404 then $tr: the second upstream answered them over $tr" 4 \
		"$(value "dotgw_upstream_transport_answers_total{upstream=\"$second\",transport=\"$tr\"}")"
	lab_check_match "404 then $tr: the server answered 404 (dotgw's debug log)" \
		"stream [0-9]+ ended with status 404" "$(cat "$DOTGW_LOG")"
	lab_check_eq "404 then $tr: no SERVFAIL" 0 \
		"$(value 'dotgw_responses_total{result="servfail"}')"
	lab_check_eq "404 then $tr: the 404 upstream is not backing off (an error answer is no failure)" \
		1 "$(value "dotgw_upstream_up{upstream=\"$BAD\"}")"
	lab_check_eq "404 then $tr: nothing reached the decoy" 0 "$(lab_decoy_count)"
	lab_stop_dotgw
	lab_check_eq "404 then $tr: dotgw exits 0 on SIGTERM" 0 "$?"
}

lab_log "a DoH upstream answering 404, then a DoH upstream"
resent "$GOOD_DOH" doh
lab_log "a DoH upstream answering 404, then a DoT upstream"
resent "$GOOD_DOT" dot

lab_log "the 404 upstream alone: SERVFAIL, nothing resent"
lab_decoy_reset
lab_start_dotgw "${ARGS[@]}" --upstream "$BAD" || lab_finish
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" alone.bench.test A +tries=1 +time=5
lab_check_eq "alone: SERVFAIL" SERVFAIL "$(lab_dig_status)"
scrape
lab_check_eq "alone: the error counted" 1 "$(value "dotgw_upstream_doh_errors_total{upstream=\"$BAD\"}")"
lab_check_eq "alone: nothing resent" 0 "$(value "dotgw_upstream_doh_resent_total{upstream=\"$BAD\"}")"
lab_check_eq "alone: nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_stop_dotgw
lab_check_eq "alone: dotgw exits 0 on SIGTERM" 0 "$?"

lab_finish
