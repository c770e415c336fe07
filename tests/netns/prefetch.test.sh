#!/bin/bash
# prefetch.test.sh - --prefetch: a cache hit in the last part of an entry's lifetime answers at
# once and refreshes the entry in the background, so a name asked often never expires.
#
#   client --- gw-c [gateway: dotgw --metrics 127.0.0.1:9853] gw-u --- upstream 203.0.113.2
#                                                                      (unbound DoT, zone
#                                                                      pf.test, TTL 5)
#
# The upstream serves pf.test from an auth-zone, to its iterator (for-upstream: CNAME chains
# come whole, as from a real resolver) and to its clients (for-downstream), so that each answer
# carries the records' own 5 s TTL. Answered from its cache instead, a refresh would return
# what is left of the upstream's copy, which our first miss fetched at the same moment as ours:
# an unbound upstream expires it when we do (its own prefetch needs TTLs of 10 s or more),
# and no forwarder can have fresher data than its upstream. Two names, a plain A record and a
# CNAME chain, are asked every 0.5 to 1 s for three TTL periods or more:
#   - with prefetch (the default), only the first query of each misses: dotgw's /metrics
#     count no other miss, no answer's TTL reaches 0, and the upstream saw the refreshes.
# Then --egress: a refresh whose answer brings a new address puts it in the group's set
# before any client has seen that answer. Last, with --no-prefetch, the misses come back at
# each expiry.
#
# Usage: prefetch.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"
lab_tmpdir
ZONE="$LAB_DIR/pf.test.zone"
# zone VERSION-ADDRESS: write the zone, eg.pf.test's address given
zone()
{
	# every TTL explicit: an RR without one takes the previous RR's
	cat >"$ZONE" <<-EOF
		pf.test. 300 SOA ns.pf.test. host.pf.test. $2 3600 600 86400 5
		pf.test. 300 NS ns.pf.test.
		ns.pf.test. 300 A 203.0.113.2
		short.pf.test. 5 A 203.0.113.50
		alias.pf.test. 5 CNAME c2.pf.test.
		c2.pf.test. 5 CNAME end.pf.test.
		end.pf.test. 5 A 203.0.113.51
		eg.pf.test. 5 A $1
	EOF
	chmod 644 "$ZONE"
}
zone 203.0.113.60 1
# shellcheck disable=SC2034 # read by lab_start_upstream
LAB_UP_EXTRA_CONF="
	local-zone: \"pf.test.\" transparent
auth-zone:
	name: \"pf.test.\"
	zonefile: \"$ZONE\"
	for-upstream: yes
	for-downstream: yes
	fallback-enabled: no"
lab_setup

scrape()
{
	ip netns exec "$NS_GW" timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9853 &&
		printf "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3 && cat <&3' |
		sed '1,/^\r$/d' >"$LAB_DIR/scrape.txt"
}
# metric NAME-WITH-LABELS: one sample's value from the last scrape
metric()
{
	awk -v k="$1" '$1 == k { print $2 }' "$LAB_DIR/scrape.txt"
}
HIT='dotgw_cache_lookups_total{outcome="hit"}'
MISS='dotgw_cache_lookups_total{outcome="miss"}'
PF='dotgw_cache_prefetch_total{outcome='

# ask NAME: one query; prints "STATUS TTL-OF-EACH-RECORD..." (the TTLs the client sees)
ask()
{
	lab_in "$NS_CLIENT" timeout 5 dig +time=2 +tries=1 +nocookie +noall +comments +answer \
		@"$LAB_DECOY4" "$1" A 2>&1 |
		awk '/->>HEADER<<-/ { sub(/,.*/, "", $6); s = $6 }
		     /^[^;]/ && NF >= 5 { t = t " " $2 } END { print s t }'
}

# workload LABEL: 30 rounds of both names, each begun 0.5 s after the one before (later if a
# round takes longer), so that they span three 5 s TTL periods however fast dig answers (a
# fixed 0.25 s pause made rounds 0.4 s apart on a quiet machine: two expiries, not three, and
# the --no-prefetch part failed); the answers go to $LAB_DIR/LABEL.txt
workload()
{
	local i t0 wait
	: >"$LAB_DIR/$1.txt"
	t0=${EPOCHREALTIME/./}
	for ((i = 0; i < 30; i++)); do
		echo "short $(ask short.pf.test)" >>"$LAB_DIR/$1.txt"
		echo "alias $(ask alias.pf.test)" >>"$LAB_DIR/$1.txt"
		# microseconds until this round's start + 0.5 s
		wait=$((t0 + (i + 1) * 500000 - ${EPOCHREALTIME/./}))
		[ "$wait" -le 0 ] || lab_sleep "$(printf '%d.%06d' $((wait / 1000000)) $((wait % 1000000)))"
	done
}

lab_log "with prefetch (the default)"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" \
	--metrics 127.0.0.1:9853 || lab_finish
lab_upstream_reset
workload on
scrape
lab_check_eq "every answer is NOERROR" 0 \
	"$(grep -cv '^[a-z]* NOERROR' "$LAB_DIR/on.txt")"
lab_check_eq "the CNAME chain comes whole (3 records)" 30 \
	"$(grep -Ec '^alias NOERROR [0-9]+ [0-9]+ [0-9]+$' "$LAB_DIR/on.txt")"
lab_check_eq "no TTL the client sees reaches 0" "" \
	"$(grep -E ' 0( |$)' "$LAB_DIR/on.txt" | head -n 3)"
lab_check_eq "only the first query of each name missed" 2 "$(metric "$MISS")"
lab_check_eq "every other query was a cache hit" 58 "$(metric "$HIT")"
lab_check_num "refreshes started (two names, three TTL periods)" \
	"$(metric "$PF\"started\"}")" -ge 4
lab_check_num "refreshes completed" "$(metric "$PF\"completed\"}")" -ge 4
started=$(metric "$PF\"started\"}")
lab_check_eq "the upstream saw the two misses and every refresh" "$((2 + ${started:-0}))" \
	"$(lab_upstream_queries)"
lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"

lab_log "--egress: a refresh puts its answer's new address in the group's set"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" \
	--metrics 127.0.0.1:9853 --group "kids=$LAB_CLIENT4/32" --egress kids || lab_finish
in_set() { lab_in "$NS_GW" nft list set inet dotgw_egress e0_4 | grep -q "$1"; }
lab_check_eq "first answer" "NOERROR 5" "$(ask eg.pf.test)"
lab_ok "its address is in the group's set" in_set '203\.0\.113\.60'
# the zone changes
zone 203.0.113.61 2
lab_in "$NS_UP" timeout 10 unbound-control -c "$LAB_UP_CONF" auth_zone_reload pf.test >/dev/null
# ask until a hit starts a refresh (in the last 2 s of the entry's 5); "TTL ADDRESS" each
seen=
for ((i = 0; i < 12; i++)); do
	lab_sleep 0.5
	last=$(lab_in "$NS_CLIENT" timeout 5 dig +time=2 +tries=1 +noall +answer \
		@"$LAB_DECOY4" eg.pf.test A | awk '{ print $2, $5 }')
	seen+="$last; "
	scrape
	[ "$(metric "$PF\"started\"}")" -ge 1 ] 2>/dev/null && break
done
lab_check_match "the hit that started it had the cached answer, near its end" \
	'^[12] 203\.0\.113\.60$' "$last"
completed() { scrape && [ "$(metric "$PF\"completed\"}")" = 1 ]; }
lab_ok "the refresh completed" lab_wait_until 30 completed
lab_check_nomatch "no client got the new answer yet" '203\.0\.113\.61' "$seen"
lab_ok "...but its address is in the group's set" lab_wait_until 30 in_set '203\.0\.113\.61'
hits=$(metric "$HIT")
lab_check_eq "the next query gets the new answer" 203.0.113.61 \
	"$(lab_in "$NS_CLIENT" dig +short +time=2 +tries=1 @"$LAB_DECOY4" eg.pf.test A)"
scrape
lab_check_eq "...from the cache" $((hits + 1)) "$(metric "$HIT")"
lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"

lab_log "with --no-prefetch"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" \
	--metrics 127.0.0.1:9853 --no-prefetch || lab_finish
workload off
scrape
lab_check_eq "every answer is NOERROR" 0 \
	"$(grep -cv '^[a-z]* NOERROR' "$LAB_DIR/off.txt")"
lab_check_num "misses recur at each expiry" "$(metric "$MISS")" -ge 6
lab_check_eq "no refresh started" 0 "$(metric "$PF\"started\"}")"
lab_stop_dotgw
lab_finish
