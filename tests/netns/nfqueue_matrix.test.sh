#!/bin/bash
# nfqueue_matrix.test.sh - dotgw in NFQUEUE mode: UDP queries are queued, dropped, answered
# over DoT and the answer injected through raw sockets from the queried address and port;
# TCP (and so the retry after a truncated UDP answer) goes through TPROXY. IPv4 and IPv6,
# gateway scope (from the client) and host scope (from the gateway itself). The two queues'
# workers share one cache: from 16 client addresses, a name asked over UDP (either queue) is a
# cache hit over TCP (worker 0). These kernels have no native nftables queue expression: the
# xtables NFQUEUE target fallback is what runs here.
#
#   client --- gw-c [gateway: dotgw --mode nfqueue] gw-u --- upstream 203.0.113.2 (DoT @853)
#                                                   gw-d --- decoy 192.0.2.53 (plain @53)
#
# Usage: nfqueue_matrix.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" conntrack
lab_require_dotgw "${1:-}"
lab_setup

# expect_upstream WHERE NS SERVER TYPE PROTO
expect_upstream()
{
	local expect=$LAB_UP_A opt=+notcp
	[ "$4" = AAAA ] && expect=$LAB_UP_AAAA
	[ "$5" = TCP ] && opt=+tcp
	lab_dig "$2" @"$3" www.example.test "$4" "$opt"
	lab_check_eq "$1: $5 $4 @$3 is answered by the upstream" \
		"NOERROR $expect from $3#53 ($5)" "$(lab_dig_summary "$4")"
}

# Conntrack runs in a namespace only when some rule needs it: this one makes it track
# everything in the gateway, so the notrack check below can fail.
ip netns exec "$NS_GW" nft -f - <<'NFT'
table inet conntrack_on {
	chain pre { type filter hook prerouting priority 0; ct state new counter; }
	chain out { type filter hook output priority 0; ct state new counter; }
}
NFT
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --mode nfqueue --queues 2 --scope both --interface "$LAB_GW_IF_CLIENT" || lab_finish
lab_ok "the queue rule fallback is logged once" \
	test "$(grep -c 'xtables NFQUEUE target' "$DOTGW_LOG")" = 1
for family in 4 6; do
	server=$LAB_DECOY4 type=A
	[ "$family" = 6 ] && server=$LAB_DECOY6 type=AAAA
	expect_upstream client "$NS_CLIENT" "$server" "$type" UDP
	expect_upstream host "$NS_GW" "$server" "$type" UDP
	expect_upstream client "$NS_CLIENT" "$server" "$type" TCP
	expect_upstream host "$NS_GW" "$server" "$type" TCP
done

lab_log "a large answer: truncated over UDP, complete over the TCP retry"
for server in "$LAB_DECOY4" "$LAB_DECOY6"; do
	lab_dig "$NS_CLIENT" @"$server" big.example.test TXT +ignore +bufsize=1232
	lab_ok "UDP @$server: TC set" lab_dig_has_flag tc
	lab_check_eq "UDP @$server: no answer records in the truncated answer" 0 "$(lab_dig_ancount)"
	lab_dig "$NS_GW" @"$server" big.example.test TXT +ignore +noedns
	lab_ok "host, no EDNS, @$server: TC set" lab_dig_has_flag tc
	lab_dig "$NS_CLIENT" @"$server" big.example.test TXT
	lab_check_eq "plain dig @$server retries over TCP and gets all 40 records" \
		"NOERROR 40 TCP" "$(lab_dig_status) $(lab_dig_ancount) $(lab_dig_proto)"
done
lab_check_eq "nothing reached the decoy" 0 "$(lab_decoy_count)"

# The two queues' workers share one cache. The kernel spreads UDP over the queues by a hash of
# the addresses (its seed drawn once per boot) and worker 0 takes all TCP, so from 16 client
# addresses some UDP goes through queue 1, and a name asked over UDP and then over TCP meets two
# workers. With a cache per worker those TCP queries were misses (fidelity.test.sh failed so).
for ((i = 0; i < 16; i++)); do
	ip -n "$NS_CLIENT" addr add "198.51.100.$((100 + i))/24" dev "$LAB_IF_CLIENT" ||
		lab_bail "adding a client address"
done
lab_dotgw_usr1_workers
hits0=$(lab_dotgw_stat cache_hits) udp0=$(lab_dotgw_worker_stat 1 UDP)
bad=0
for ((i = 0; i < 16; i++)); do
	for proto in UDP TCP; do
		lab_dig "$NS_CLIENT" -b "198.51.100.$((100 + i))" @"$LAB_DECOY4" "c$i.bench.test" A \
			"$([ "$proto" = TCP ] && echo +tcp || echo +notcp)"
		[ "$(lab_dig_summary A)" = "NOERROR 203.0.113.99 from $LAB_DECOY4#53 ($proto)" ] ||
			{ bad=$((bad + 1)); lab_log "c$i from .$((100 + i)) over $proto: $(lab_dig_summary A)"; }
	done
done
lab_check_eq "16 client addresses: 32 answers over UDP and TCP" 0 "$bad"
lab_dotgw_usr1_workers
lab_ok "queue 1's worker took some of the UDP queries" \
	test $(($(lab_dotgw_worker_stat 1 UDP) - udp0)) -gt 0
lab_check_eq "each name's TCP query (worker 0) is a cache hit" 16 \
	$(($(lab_dotgw_stat cache_hits) - hits0))

# The injected answers are kept out of conntrack (notrack on the bypass mark): the gateway's
# conntrack table holds no entry from the decoy address's port 53.
lab_check_eq "injected answers left no conntrack entries" 0 \
	"$(ip netns exec "$NS_GW" conntrack -L -p udp 2>/dev/null | grep -c 'sport=53 ')"

lab_stop_dotgw
lab_check_eq "dotgw exits 0 on SIGTERM" 0 "$?"
lab_check_num "packets were read from the queues" "$(lab_dotgw_stat queue_packets)" -ge 8
lab_check_eq "no query was dropped" 0 "$(lab_dotgw_stat dropped)"
lab_check_eq "no answer failed to send" 0 "$(lab_dotgw_stat reply_errors)"
lab_ok "the table is gone after SIGTERM" sh -c "! ip netns exec '$NS_GW' nft list table inet dotgw"
lab_finish
