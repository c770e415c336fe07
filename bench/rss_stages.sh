#!/bin/bash
# bench/rss_stages.sh - where dotgw's resident set goes, stage by stage: dotgw started as
# bench/run.sh starts it (the lab of tests/netns/lib.sh, --scope gateway, --log-level info,
# the upstream without query logging; but without bench/run.sh's --user nobody, so that the
# figures of bench/RESULTS.md 2026-12-04 23:53 stay comparable: -a --user -a nobody adds it), then dnsperf from the client as bench/run.sh's miss
# workload (-c 8 -q 200, unique names), and bench/smaps_split.py's split of the resident set
# (KiB by mapping) after each stage: start, first query, 2,000, 20,000 and 200,000 misses.
#
# Usage: sudo bench/rss_stages.sh [-a ARG]... [-s STAGES] [-c CLIENTS] PATH-TO-DOTGW
#   -a ARG     a dotgw argument (repeatable), e.g. -a --mode -a nfqueue -a --queues -a 2
#   -s LIST    the miss stages, comma-separated counts of names (default 2000,20000,200000)
#   -c N       dnsperf clients (sockets; default 8)
#   -m N       the misses come from N client addresses (SNAT, as bench/run.sh's many
#              workload; with -c N or more each socket gets one), so nfqueue spreads them
#   -v         every anonymous mapping on a line of its own too
# Prints "STAGE LABEL KIB" lines. One dotgw and one dnsperf at a time.

set -u
RSS_SELF_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../tests/netns/lib.sh
. "$RSS_SELF_DIR/../tests/netns/lib.sh"

RSS_ARGS=()
RSS_STAGES=2000,20000,200000
RSS_CLIENTS=8
RSS_VERBOSE=
RSS_MANY=0
while getopts "a:s:c:m:v" opt; do
	case $opt in
	a) RSS_ARGS+=("$OPTARG") ;;
	s) RSS_STAGES=$OPTARG ;;
	c) RSS_CLIENTS=$OPTARG ;;
	m) RSS_MANY=$OPTARG ;;
	v) RSS_VERBOSE=-v ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))

lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf python3
lab_require_dotgw "${1:-}"
lab_setup
lab_upstream_quiet || lab_bail "upstream restart"

if [ "$RSS_MANY" -gt 0 ]; then
	lab_client_spread rssmany "$RSS_MANY" || lab_bail "the client's $RSS_MANY addresses"
fi

rss_snapshot()
{
	python3 "$RSS_SELF_DIR/smaps_split.py" $RSS_VERBOSE "$DOTGW_PID" | sed "s/^/$1 /"
}

lab_start_dotgw --scope gateway --interface "$LAB_GW_IF_CLIENT" \
	--upstream "$LAB_UP4#$LAB_AUTH_NAME" --ca-file "$LAB_CA" --log-level info \
	"${RSS_ARGS[@]}" || lab_bail "dotgw did not start"
sleep 1
rss_snapshot start
a=$(ip netns exec "$NS_CLIENT" timeout 5 dig +time=2 +tries=1 +short @"$LAB_DECOY4" \
	first.bench.test A)
[ "$a" = 203.0.113.99 ] || lab_bail "no answer through dotgw (got '$a')"
sleep 0.5
rss_snapshot first
IFS=, read -r -a stages <<<"$RSS_STAGES"
for n in "${stages[@]}"; do
	awk -v n="$n" -v tag="s$n" \
		'BEGIN { for (i = 0; i < n; i++) printf "%s-%x.bench.test A\n", tag, i }' \
		>"$LAB_DIR/names"
	LAB_RUN_TIMEOUT=120 lab_run "$NS_CLIENT" dnsperf -s "$LAB_DECOY4" -p 53 -d "$LAB_DIR/names" \
		-n 1 -c "$RSS_CLIENTS" -q 200 -t 4
	printf '%s\n' "$LAB_OUT" | grep -E 'Queries (completed|lost)' | sed "s/^ */miss$n # /"
	sleep 0.5
	rss_snapshot "miss$n"
done
kill -USR1 "$DOTGW_PID"
sleep 0.5
grep -E 'worker [0-9]+: |stats:' "$DOTGW_LOG" | tail -n 3 | sed 's/^/log # /'
lab_stop_dotgw
