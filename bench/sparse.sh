#!/bin/bash
# bench/sparse.sh - issue 17's sparse traffic: what a query costs after a quiet gap, when the
# upstream closes idle DoT connections early (Quad9 after about 2 s), with each of dotgw's ways
# of hiding the reconnection. In the lab of tests/netns/lib.sh, with bench/wan.sh's WAN between
# gateway and upstream (netem, or bench/netdelay.c over NFQUEUE for TCP :853).
#
#   client: kdig ---- gateway: dotgw --mode tproxy ---- RTT (20 ms) ---- upstream: unbound DoT
#                                                                        tcp-idle-timeout: 2000
# Methods, one dotgw each (fresh), in this order:
#   none        --standby 0; the upstream issues no session tickets (OpenSSL NumTickets = 0,
#               through OPENSSL_CONF): every reconnection is a full handshake
#   resumption  --standby 0; TLS session resumption (on by default)
#   tfo         --standby 0 --tcp-fastopen; the upstream's namespace has tcp_fastopen=3
#   standby     --standby 10 (the default)
# Each: one query to warm up (connection, session ticket, TFO cookie), then ROUNDS times: GAP
# seconds of silence, a query ("sparse"), and at once another one ("warm"); every name is new
# (no cache hit). Latency is kdig's, from the client (the client-gateway link is a LAN).
# Prints medians per method, also in RTTs, and the handshakes and resumptions dotgw counted.
# Early data (TLS 1.3 0-RTT) is not a method: Debian 12's unbound 1.17 never accepts it (it
# calls no SSL_CTX_set_max_early_data; its tickets say max_early_data 0).
#
# Usage: sudo bench/sparse.sh [-r ROUNDS] [-g GAP_S] [-w RTT_MS] [-W netem|netdelay|auto]
#        [PATH-TO-DOTGW]   (defaults: 5 rounds, 5 s, 20 ms, auto, build/dotgw)
# About 30 s + 4 x ROUNDS x (GAP + 0.2) s. Exit 0 when it ran, 1 on a failure, 77 skipped.

set -u
SELF=$(readlink -f -- "${BASH_SOURCE[0]}")
BENCH_SELF_DIR=$(dirname -- "$SELF")
BENCH_REPO=$(cd -- "$BENCH_SELF_DIR/.." && pwd)
ROUNDS=5
GAP=5
RTT=20
TOOL=auto
UP_IDLE_MS=2000
while getopts "r:g:w:W:h" opt; do
	case $opt in
	r) ROUNDS=$OPTARG ;;
	g) GAP=$OPTARG ;;
	w) RTT=$OPTARG ;;
	W) TOOL=$OPTARG ;;
	h) sed -n '2,/^$/s/^# \{0,1\}//p' "$SELF"; exit 0 ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[[ "$ROUNDS" =~ ^[1-9][0-9]?$ ]] || { echo "$0: -r wants 1..99, not '$ROUNDS'" >&2; exit 2; }
[[ "$GAP" =~ ^[1-9][0-9]?$ ]] || { echo "$0: -g wants 1..99 seconds, not '$GAP'" >&2; exit 2; }
if ! [[ "$RTT" =~ ^[0-9]+$ ]] || [ "$RTT" -gt 1000 ]; then
	echo "$0: -w wants 0..1000 ms, not '$RTT'" >&2
	exit 2
fi
LAB_PROC_TIMEOUT=900

# shellcheck source-path=SCRIPTDIR source=../tests/netns/lib.sh
. "$BENCH_REPO/tests/netns/lib.sh"
# shellcheck source-path=SCRIPTDIR source=wan.sh
. "$BENCH_SELF_DIR/wan.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" pkg-config awk
lab_require_dotgw "${1:-$BENCH_REPO/build/dotgw}"
LAB_UP_EXTRA_CONF=$'\ttcp-idle-timeout: '"$UP_IDLE_MS"
lab_setup >/dev/null
ip netns exec "$NS_UP" sysctl -qw net.ipv4.tcp_fastopen=3 || lab_bail "tcp_fastopen (upstream)"
ip netns exec "$NS_GW" sysctl -qw net.ipv4.tcp_fastopen=1 || lab_bail "tcp_fastopen (gateway)"
cat >"$LAB_DIR/no-tickets.cnf" <<EOC
openssl_conf = oc
[oc]
ssl_conf = sc
[sc]
system_default = sd
[sd]
NumTickets = 0
EOC
WAN_RTT_MS=$RTT WAN_JITTER_MS=0 WAN_LOSS_PCT=0 WAN_TOOL=$TOOL
wan_start >"$LAB_DIR/wan.log" 2>&1 || { cat "$LAB_DIR/wan.log"; lab_bail "starting the WAN"; }

# restart_upstream [OPENSSL_CONF]: unbound again, with that OpenSSL configuration (or none)
restart_upstream()
{
	lab_ns_kill "$NS_UP" unbound || return 1
	if [ -n "${1:-}" ]; then
		OPENSSL_CONF=$1 lab_start_upstream
	else
		lab_start_upstream
	fi
}

scrape()
{
	ip netns exec "$NS_GW" timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9853 &&
		printf "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3 && cat <&3' |
		sed '1,/^\r$/d'
}

# ask NAME: print kdig's latency in ms, or "none"
ask()
{
	ip netns exec "$NS_CLIENT" timeout 10 kdig +notcp +time=4 +retry=0 @"$LAB_UP4" "$1" A \
		2>&1 | awk '/^;; From .* in [0-9.]+ ms/ { print $(NF - 1); f = 1 } END { if (!f) print "none" }'
}

median()
{
	sort -g | awk '{ v[NR] = $1 } END { if (!NR) print "none"; else if (NR % 2) print v[(NR + 1) / 2];
		else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

METHODS=(none resumption tfo standby)
declare -A ARGS=([none]="--standby 0" [resumption]="--standby 0"
	[tfo]="--standby 0 --tcp-fastopen" [standby]="--standby 10")
ROWS=()
for m in "${METHODS[@]}"; do
	if [ "$m" = none ]; then
		restart_upstream "$LAB_DIR/no-tickets.cnf" || lab_bail "restarting the upstream"
	elif [ "$m" = resumption ]; then
		restart_upstream || lab_bail "restarting the upstream"
	fi
	# shellcheck disable=SC2086 # the method's words
	lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --log-level info --scope gateway \
		--interface "$LAB_GW_IF_CLIENT" --metrics 127.0.0.1:9853 ${ARGS[$m]} >/dev/null ||
		lab_bail "starting dotgw for $m"
	ask "w0.$m.bench.test" >/dev/null
	: >"$LAB_DIR/$m.sparse"
	: >"$LAB_DIR/$m.warm"
	for ((r = 1; r <= ROUNDS; r++)); do
		lab_sleep "$GAP"
		ask "s$r.$m.bench.test" >>"$LAB_DIR/$m.sparse"
		ask "w$r.$m.bench.test" >>"$LAB_DIR/$m.warm"
	done
	scrape >"$LAB_DIR/$m.metrics"
	hs=$(awk '$1 ~ /^dotgw_upstream_handshakes_total/ { print $2 }' "$LAB_DIR/$m.metrics")
	rs=$(awk '$1 ~ /^dotgw_upstream_resumptions_total/ { print $2 }' "$LAB_DIR/$m.metrics")
	lab_stop_dotgw
	warm=$(median <"$LAB_DIR/$m.warm")
	sparse=$(median <"$LAB_DIR/$m.sparse")
	extra=$(awk -v s="$sparse" -v w="$warm" -v r="$RTT" \
		'BEGIN { if (s == "none" || w == "none" || r == 0) print "-"; else printf "%+.1f", (s - w) / r }')
	ROWS+=("| $m | ${ARGS[$m]} | $warm | $sparse | $extra | ${hs:-?} / ${rs:-?} | $(paste -sd' ' "$LAB_DIR/$m.sparse") |")
done
WAN_DESC=$(wan_describe)
wan_stop

echo "sparse traffic: $WAN_DESC; upstream tcp-idle-timeout $UP_IDLE_MS ms;" \
	"$ROUNDS rounds of $GAP s silence, then a query (sparse) and another at once (warm)"
echo
echo "| method | dotgw | warm ms (median) | after ${GAP} s silence ms (median) | extra RTTs | handshakes / resumed | sparse samples ms |"
echo "|---|---|---:|---:|---:|---:|---|"
printf '%s\n' "${ROWS[@]}"
lab_finish >/dev/null
