#!/bin/bash
# tproxy_workers.test.sh - dotgw in TPROXY mode with --workers 2: each worker has its own UDP
# and TCP listeners (IPv4 and IPv6) in one SO_REUSEPORT group, and TPROXY's socket lookup
# picks a member by a hash of the flow. Many clients (dnsperf's 16 sockets, i.e. 16 source
# ports, plus 16 client addresses with dig) over UDP and TCP, IPv4 and IPv6, are all answered,
# each from the address it asked; both workers served some (their per-worker log lines on
# SIGUSR1); a reload under load loses nothing; SIGTERM exits 0. The workers share one cache:
# the same workload's hit ratio with 2 workers is within 5 points of 1 worker's (with a cache
# per worker it fell by 8 to 13 points).
#
#   client (dnsperf -c 16, dig from 198.51.100.100-115)
#      --- gw-c [gateway: dotgw --mode tproxy --workers 2] gw-u --- upstream (DoT)
#                                                          gw-d --- decoy (never reached)
#
# Usage: tproxy_workers.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf
lab_require_dotgw "${1:-}"
lab_setup

N=2000
for ((i = 0; i < N; i++)); do
	echo "w$i.bench.test A"
done >"$LAB_DIR/queries.txt"
# 100 names, each asked 10 times, shuffled: the hit ratio of one shared cache is 90%
for ((i = 0; i < 1000; i++)); do
	echo "h$((i % 100)).bench.test A"
done | shuf --random-source=<(yes) >"$LAB_DIR/hits.txt"
for ((i = 0; i < 16; i++)); do
	ip -n "$NS_CLIENT" addr add "198.51.100.$((100 + i))/24" dev "$LAB_IF_CLIENT" ||
		lab_bail "adding a client address"
done

CONF="$LAB_DIR/dotgw.conf"
# write_conf WORKERS: the configuration file (the upstream and capture stay the same)
write_conf()
{
	printf 'mode = tproxy\nupstream = %s\nscope = gateway\ninterface = %s\nca-file = %s\n' \
		"$LAB_UP4#$LAB_AUTH_NAME" "$LAB_GW_IF_CLIENT" "$LAB_CA" >"$CONF"
	printf 'log-level = info\nworkers = %s\n' "$1" >>"$CONF"
}

# perf DESC FILE ARGS...: dnsperf from the client (16 sockets), each name of FILE once;
# checks that every query was answered NOERROR
perf()
{
	local desc=$1 file=$2 n
	shift 2
	n=$(wc -l <"$file")
	lab_run "$NS_CLIENT" dnsperf -s "$LAB_DECOY4" -d "$file" -n 1 -c 16 -q 64 -l 60 -t 5 "$@"
	lab_check_eq "$desc: dnsperf ran" 0 "$LAB_RC"
	lab_check_eq "$desc: every query was answered" "$n" \
		"$(printf '%s\n' "$LAB_OUT" | sed -n 's/^ *Queries completed: *\([0-9]*\).*/\1/p')"
	lab_check_eq "$desc: every answer is NOERROR" "$n" \
		"$(printf '%s\n' "$LAB_OUT" | sed -n 's/^ *Response codes: *NOERROR \([0-9]*\).*/\1/p')"
}

# hit ratio with WORKERS: 1000 queries of 100 names, in percent
hit_ratio()
{
	write_conf "$1"
	lab_start_dotgw --config "$CONF" || lab_finish
	perf "hits, $1 worker(s)" "$LAB_DIR/hits.txt"
	kill -USR1 "$DOTGW_PID"
	lab_wait_until 50 grep -q 'stats:' "$DOTGW_LOG"
	local h m
	h=$(lab_dotgw_stat cache_hits)
	m=$(lab_dotgw_stat cache_misses)
	lab_stop_dotgw
	RATIO=$((100 * h / (h + m)))
	lab_log "cache with $1 worker(s): $h hits, $m misses: $RATIO% hits"
}

write_conf 2
lab_start_dotgw --config "$CONF" || lab_finish
lab_ok "two workers are started, sharing 4 TLS connections per upstream, at least 2 each" \
	grep -q 'ready: .*, 2 workers, up to 4 TLS connections per upstream shared by the workers, at least 2 each;' \
	"$DOTGW_LOG"
perf "UDP, 16 sockets" "$LAB_DIR/queries.txt"
perf "TCP, 16 connections" "$LAB_DIR/queries.txt" -m tcp
perf "UDP over IPv6, 16 sockets" "$LAB_DIR/queries.txt" -s "$LAB_DECOY6"
# 16 client addresses, UDP and TCP, IPv4; dig checks that the answer came from the address asked
bad=0
for ((i = 0; i < 16; i++)); do
	for proto in +notcp +tcp; do
		lab_dig "$NS_CLIENT" @"$LAB_DECOY4" -b "198.51.100.$((100 + i))" www.example.test A \
			"$proto"
		[ "$(lab_dig_summary A)" = "NOERROR $LAB_UP_A from $LAB_DECOY4#53 ($([ "$proto" = +tcp ] && echo TCP || echo UDP))" ] ||
			{ bad=$((bad + 1)); lab_log "from 198.51.100.$((100 + i)) $proto: $(lab_dig_summary A)"; }
	done
done
lab_check_eq "32 queries from 16 client addresses answered from $LAB_DECOY4" 0 "$bad"
lab_dotgw_usr1_workers
w0=$(lab_dotgw_worker_stat 0 queries)
w1=$(lab_dotgw_worker_stat 1 queries)
lab_log "per worker: worker 0 $w0 queries, worker 1 $w1"
lab_check_eq "the workers' queries add up" $((3 * N + 32)) $((w0 + w1))
lab_ok "worker 0 served some queries" test "${w0:-0}" -gt 0
lab_ok "worker 1 served some queries" test "${w1:-0}" -gt 0

# a reload under load: nothing lost, the listeners stay
lab_bg "$NS_CLIENT" "$LAB_DIR/dnsperf.out" dnsperf -s "$LAB_DECOY4" -d "$LAB_DIR/queries.txt" \
	-n 1 -c 16 -Q 500 -l 20 -t 3
load=$LAB_BG_PID
lab_sleep 1
kill -HUP "$DOTGW_PID"
lab_wait_until 50 grep -q 'reloaded' "$DOTGW_LOG"
lab_ok "the reload is logged" grep -q "reloaded $CONF" "$DOTGW_LOG"
wait "$load"
out=$(cat "$LAB_DIR/dnsperf.out")
lab_check_eq "reload: every query answered" "$N" \
	"$(sed -n 's/^ *Queries completed: *\([0-9]*\).*/\1/p' <<<"$out")"
lab_check_eq "reload: no query lost" 0 "$(sed -n 's/^ *Queries lost: *\([0-9]*\).*/\1/p' <<<"$out")"
perf "UDP after the reload" "$LAB_DIR/queries.txt"
perf "TCP after the reload" "$LAB_DIR/queries.txt" -m tcp
lab_check_eq "nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_stop_dotgw
lab_check_eq "dotgw exits 0 on SIGTERM" 0 "$?"

# --workers in nfqueue mode: --queues decides, said on stderr
lab_run "$NS_GW" "$DOTGW" --check-config --mode nfqueue --queues 1 --workers 3 \
	--upstream "$LAB_UP4#$LAB_AUTH_NAME" --ca-file "$LAB_CA"
lab_check_match "nfqueue mode: --workers is ignored, and says so" 'workers: ignored' "$LAB_OUT"

hit_ratio 1
one=$RATIO
hit_ratio 2
lab_ok "the hit ratio with 2 workers ($RATIO%) is within 5 points of 1 worker's ($one%)" \
	test "$RATIO" -ge $((one - 5))
lab_finish
