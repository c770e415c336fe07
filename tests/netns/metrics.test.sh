#!/bin/bash
# metrics.test.sh - the Prometheus endpoint: --metrics 127.0.0.1:9853 in the gateway serves
# /metrics that promtool accepts, and its counters move as queries flow (queries by protocol
# and family, answers, cache hits, per-upstream answers and latency histogram, per upstream and
# transport); SIGUSR1 logs the same counters.
#
#   client --- gw-c [gateway: dotgw --metrics 127.0.0.1:9853] gw-u --- upstream
#
# Usage: metrics.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" promtool
lab_require_dotgw "${1:-}"
lab_setup

# scrape [PATH]: the body of GET PATH (default /metrics) from inside the gateway
scrape()
{
	ip netns exec "$NS_GW" timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9853 &&
		printf "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" "$1" >&3 && cat <&3' _ \
		"${1:-/metrics}" | sed '1,/^\r$/d'
}

# value NAME-WITH-LABELS: one sample's value from the last scrape
value()
{
	awk -v k="$1" '$1 == k { print $2 }' "$LAB_DIR/scrape.txt"
}

lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" --metrics 127.0.0.1:9853 || lab_finish
scrape >"$LAB_DIR/scrape.txt"
lab_ok "the endpoint answers" test -s "$LAB_DIR/scrape.txt"
if ip netns exec "$NS_GW" promtool check metrics <"$LAB_DIR/scrape.txt" \
	>"$LAB_DIR/promtool.out" 2>&1; then
	lab_pass "promtool check metrics accepts the exposition"
else
	lab_fail "promtool check metrics accepts the exposition" \
		"$(lab_indent <"$LAB_DIR/promtool.out")"
fi
lab_check_eq "no queries yet" 0 "$(value 'dotgw_queries_total{mode="tproxy",protocol="udp"}')"

for i in 1 2 3; do
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" "m$i.bench.test" A
done
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" m1.bench.test A      # a cache hit
lab_dig "$NS_CLIENT" @"$LAB_DECOY6" m4.bench.test A +tcp # IPv6, TCP
scrape >"$LAB_DIR/scrape.txt"
up="$LAB_UP4@853#$LAB_AUTH_NAME"
lab_check_eq "UDP queries counted" 4 "$(value 'dotgw_queries_total{mode="tproxy",protocol="udp"}')"
lab_check_eq "TCP queries counted" 1 "$(value 'dotgw_queries_total{mode="tproxy",protocol="tcp"}')"
lab_check_eq "IPv6 queries counted" 1 "$(value 'dotgw_queries_by_family_total{family="ipv6"}')"
lab_check_eq "upstream answers counted" 4 "$(value 'dotgw_responses_total{result="upstream"}')"
lab_check_eq "the cache hit counted" 1 "$(value 'dotgw_responses_total{result="cache"}')"
lab_check_eq "the upstream is up" 1 "$(value "dotgw_upstream_up{upstream=\"$up\"}")"
lab_check_eq "per-upstream answers" 4 "$(value "dotgw_upstream_answers_total{upstream=\"$up\"}")"
lab_check_eq "latency histogram count" 4 \
	"$(value "dotgw_upstream_latency_seconds_count{upstream=\"$up\"}")"
lab_check_eq "handshakes" 1 "$(value "dotgw_upstream_handshakes_total{upstream=\"$up\"}")"
# per upstream and transport: a DoT upstream has both series (dot, and doh for its DoH
# fallback), and all went over DoT
lab_check_eq "per transport: queries over DoT" 4 \
	"$(value "dotgw_upstream_transport_queries_total{upstream=\"$up\",transport=\"dot\"}")"
lab_check_eq "per transport: answers over DoT" 4 \
	"$(value "dotgw_upstream_transport_answers_total{upstream=\"$up\",transport=\"dot\"}")"
lab_check_eq "per transport: one DoT handshake" 1 \
	"$(value "dotgw_upstream_transport_handshakes_total{upstream=\"$up\",transport=\"dot\"}")"
lab_check_eq "per transport: nothing over its DoH fallback" 0 \
	"$(value "dotgw_upstream_transport_answers_total{upstream=\"$up\",transport=\"doh\"}")"
lab_check_eq "per upstream: no DoH errors" 0 "$(value "dotgw_upstream_doh_errors_total{upstream=\"$up\"}")"
lab_check_eq "the process-wide DoH counters stay" 0 "$(value dotgw_doh_queries_total)"
ip netns exec "$NS_GW" promtool check metrics <"$LAB_DIR/scrape.txt" >/dev/null 2>&1
lab_check_eq "promtool still accepts it with samples" 0 "$?"
lab_ok "another path is 404" sh -c "ip netns exec '$NS_GW' timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9853; printf \"GET /x HTTP/1.0\r\n\r\n\" >&3; head -n 1 <&3' | grep -q ' 404 '"
# SIGUSR1: the main thread reads the workers' counters while they run (a ThreadSanitizer
# build reports any unsynchronised read as a race, and then exits 66: "dotgw exits 0" fails).
kill -USR1 "$DOTGW_PID"
lab_ok "SIGUSR1 logs the counters" lab_wait_until 50 grep -q 'stats: .*answered=4' "$DOTGW_LOG"
lab_check_match "SIGUSR1 logs the upstream's health and counters" \
	"upstream $up: usable, 1 connections open, handshakes=1 resumed=0 failures=0 answers=4" \
	"$(cat "$DOTGW_LOG")"
lab_check_match "SIGUSR1 logs its DoH fallback's counters" \
	"upstream $up: .* doh_handshakes=0 doh_resumed=0 doh_answers=0" "$(cat "$DOTGW_LOG")"
lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"
lab_finish
