#!/bin/bash
# cache.test.sh - the answer cache: a second query for the same name is answered without
# reaching the upstream, with its TTL counted down; different types do not mix; with
# --serve-stale an expired answer is served (TTL 30) when the upstream is gone, and without it
# the client gets SERVFAIL.
#
#   client --- gw-c [gateway: dotgw] gw-u --- upstream 203.0.113.2 (unbound DoT; its
#                                             total.num.queries says what reached it)
#
# Usage: cache.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"
lab_setup

# ttl_of TYPE: the TTL of the first TYPE record of the last answer
ttl_of()
{
	printf '%s\n' "$LAB_OUT" | awk -v t="$1" '/^;; ANSWER SECTION:/ { s = 1; next }
		s && $4 == t { print $2; exit }'
}

lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" || lab_finish
lab_upstream_reset
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A
lab_check_eq "first query answered by the upstream" "NOERROR $LAB_UP_A" \
	"$(lab_dig_status) $(lab_dig_rdata A)"
first_ttl=$(ttl_of A)
lab_check_eq "the upstream saw one query" 1 "$(lab_upstream_queries)"
# the TTL is counted in whole seconds: wait until one has passed
sleep 1.2
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A
lab_check_eq "second query answered (from the cache)" "NOERROR $LAB_UP_A" \
	"$(lab_dig_status) $(lab_dig_rdata A)"
lab_check_eq "the upstream still saw one query" 1 "$(lab_upstream_queries)"
lab_check_num "the cached TTL counts down ($first_ttl then $(ttl_of A))" "$(ttl_of A)" -lt \
	"$first_ttl"
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" WWW.Example.TEST A
lab_ok "a query differing in case hits, and keeps its own spelling" \
	grep -q '^WWW.Example.TEST.' <<<"$LAB_OUT"
lab_check_eq "the upstream still saw one query" 1 "$(lab_upstream_queries)"
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test AAAA
lab_check_eq "another type is not answered from the A entry" "NOERROR $LAB_UP_AAAA" \
	"$(lab_dig_status) $(lab_dig_rdata AAAA)"
lab_check_eq "the upstream saw the AAAA query" 2 "$(lab_upstream_queries)"
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A +tcp
lab_check_eq "a TCP query is answered from the same cache" "NOERROR $LAB_UP_A" \
	"$(lab_dig_status) $(lab_dig_rdata A)"
lab_check_eq "the upstream still saw two queries" 2 "$(lab_upstream_queries)"
lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"
lab_check_num "cache hits were counted" "$(lab_dotgw_stat cache_hits)" -ge 3

lab_log "serve-stale: answers expire after 1 s; then the upstream goes away"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" --cache-max-ttl 1 --serve-stale 60 \
	--timeout 1000 || lab_finish
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A
lab_check_eq "answered while the upstream lives" "NOERROR $LAB_UP_A" \
	"$(lab_dig_status) $(lab_dig_rdata A)"
lab_check_eq "the TTL is capped by --cache-max-ttl in the cache only" 1 "$(ttl_of A | \
	awk '{ print ($1 > 1) }')"
lab_ns_kill "$NS_UP" unbound
sleep 1.5
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A +tries=1 +time=4
lab_check_eq "expired and no upstream: the stale answer, TTL 30" "NOERROR $LAB_UP_A 30" \
	"$(lab_dig_status) $(lab_dig_rdata A) $(ttl_of A)"
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" never.cached.example.test A +tries=1 +time=4
lab_check_eq "nothing cached and no upstream: SERVFAIL" SERVFAIL "$(lab_dig_status)"
lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"
lab_check_eq "one stale answer was served" 1 "$(lab_dotgw_stat cache_stale)"
lab_check_eq "nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_finish
