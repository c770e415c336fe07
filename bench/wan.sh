#!/bin/bash
# bench/wan.sh - the WAN path of bench/run.sh: delay, jitter and loss between the lab's gateway
# and its upstream. Sourced (after tests/netns/lib.sh) by bench/run.sh, bench/wan_check.sh,
# bench/slow_upstream.sh and tests that need a slow path; it runs nothing by itself.
#
#   gateway (NS_GW)                                  upstream (NS_UP)
#  +----------------------------+                  +-----------------------------+
#  | dotgw, unbound forwarder,  |       gw-u  u0   | unbound DoT @853            |
#  | dnsperf DoT direct     ----+------------------+--> prerouting: tcp dport    |
#  |                            |                  |    853 (DoT) or 443 (DoH)   |
#  |                            |                  |    -> netdelay: RTT/2       |
#  | prerouting: tcp sport     <+------------------+----                         |
#  |  853 or 443                |                  |                             |
#  |  -> netdelay: RTT/2        |                  |                             |
#  +----------------------------+                  +-----------------------------+
#
# Two ways, tried in this order (WAN_TOOL=auto), or one of them by name:
# - netem: "tc qdisc add ... netem delay RTT/2 JITTER/2 loss LOSS%" on the egress of both ends
#   of the gateway-upstream link (gw-u, u0). It delays everything on that link, the UDP
#   ceiling's port 53 included. Not available on the kernels this was written on (no
#   sch_netem): untested.
# - netdelay: bench/netdelay.c, built here, over NFQUEUE: one instance in each namespace holds
#   the TCP :853 and :443 (DoT and DoH) packets that come in from the other side (upstream: dport
#   853/443 on u0; gateway: sport 853/443 on gw-u) for RTT/2 +- JITTER/2 and drops LOSS% of them.
#   So every DoT or DoH packet between gateway and upstream, either way, IPv4 and IPv6, pays
#   half the round trip and the loss once; nothing else on the link is touched (UDP direct
#   stays a LAN figure). Only incoming packets are held: a packet held in a sender's own output
#   path would still count against its socket's TCP small queues and throttle the sender, which
#   a real WAN does not.
#   The rules are a native nft "queue" where the kernel has it, else the xtables NFQUEUE target
#   through iptables-nft (raw table, prerouting), in those two namespaces only. No fail-open:
#   if a helper dies, the DoT flow stops instead of silently losing its delay.
#
# Settings: WAN_RTT_MS, WAN_JITTER_MS, WAN_LOSS_PCT (decimals allowed), WAN_TOOL
# (auto | netem | netdelay), WAN_SEED (netdelay's random seed; default: from the clock),
# WAN_LIMIT (packets netdelay holds at most, per side; default 10000).
# Afterwards: WAN_USED (netem or netdelay, while it is up), WAN_USED_LAST (after wan_stop),
# WAN_COUNTERS (netdelay's exit lines, after wan_stop).
#
# Also here, for bench/slow_upstream.sh and tests/netns/slow_misses.test.sh: a recursive
# upstream whose misses are slow (wan_slow_auth_start), netdelay again, on another link.

WAN_RTT_MS=${WAN_RTT_MS:-0}
WAN_JITTER_MS=${WAN_JITTER_MS:-0}
WAN_LOSS_PCT=${WAN_LOSS_PCT:-0}
WAN_TOOL=${WAN_TOOL:-auto}
WAN_SEED=${WAN_SEED:-}
WAN_LIMIT=${WAN_LIMIT:-10000}
WAN_QUEUE=853
WAN_SRC=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)/netdelay.c
WAN_USED=
WAN_RULES=
WAN_JOBS=()
WAN_LOGS=()
WAN_COUNTERS=

# wan_parse SPEC: "RTT_MS[,JITTER_MS[,LOSS_PCT]]" into WAN_RTT_MS, WAN_JITTER_MS, WAN_LOSS_PCT;
# prints an error naming the bad part and returns 1 when it is not that.
wan_parse()
{
	local rtt jitter loss extra num='^[0-9]+([.][0-9]+)?$'
	IFS=, read -r rtt jitter loss extra <<<"$1"
	jitter=${jitter:-0}
	loss=${loss:-0}
	if [ -n "$extra" ] || ! [[ "$rtt" =~ $num ]] || ! [[ "$jitter" =~ $num ]] ||
		! [[ "$loss" =~ $num ]]; then
		echo "WAN '$1': want RTT_MS[,JITTER_MS[,LOSS_PCT]], plain decimal numbers" >&2
		return 1
	fi
	if awk -v r="$rtt" 'BEGIN { exit !(r > 60000) }'; then
		echo "WAN '$1': RTT_MS $rtt is above 60000" >&2
		return 1
	fi
	if awk -v j="$jitter" -v r="$rtt" 'BEGIN { exit !(j > r) }'; then
		echo "WAN '$1': JITTER_MS $jitter is above RTT_MS $rtt" >&2
		return 1
	fi
	if awk -v l="$loss" 'BEGIN { exit !(l > 100) }'; then
		echo "WAN '$1': LOSS_PCT $loss is above 100" >&2
		return 1
	fi
	WAN_RTT_MS=$rtt
	WAN_JITTER_MS=$jitter
	WAN_LOSS_PCT=$loss
}

# wan_half X: X / 2, for the one-way figures.
wan_half()
{
	awk -v x="$1" 'BEGIN { printf "%.3f", x / 2 }'
}

wan_describe()
{
	local how
	case $WAN_USED in
	netem) how="sch_netem on both ends of the gateway-upstream link, all traffic" ;;
	netdelay) how="bench/netdelay.c over NFQUEUE, TCP :853 and :443 (DoT, DoH) only, both ways" ;;
	*) how="not set up" ;;
	esac
	printf 'RTT %s ms, jitter +-%s ms, loss %s%% per packet (%s)' "$WAN_RTT_MS" \
		"$WAN_JITTER_MS" "$WAN_LOSS_PCT" "$how"
}

wan_netem_start()
{
	local d j
	d=$(wan_half "$WAN_RTT_MS")
	j=$(wan_half "$WAN_JITTER_MS")
	ip netns exec "$NS_UP" tc qdisc add dev "$LAB_IF_UP" root netem delay "${d}ms" "${j}ms" \
		loss "${WAN_LOSS_PCT}%" 2>/dev/null || return 1
	if ! ip netns exec "$NS_GW" tc qdisc add dev "$LAB_GW_IF_UP" root netem delay "${d}ms" \
		"${j}ms" loss "${WAN_LOSS_PCT}%"; then
		ip netns exec "$NS_UP" tc qdisc del dev "$LAB_IF_UP" root 2>/dev/null
		return 1
	fi
	WAN_USED=netem
}

# wan_build: compile netdelay into LAB_DIR (WAN_BIN) with CC (default cc) and WAN_CFLAGS
# (e.g. -fsanitize=address,undefined); errors are printed.
wan_build()
{
	local cc=${CC:-cc} flags
	flags=$(pkg-config --cflags --libs libnetfilter_queue libmnl) || return 1
	WAN_BIN=$LAB_DIR/netdelay
	# shellcheck disable=SC2086 # pkg-config's words and the caller's flags
	"$cc" -std=gnu17 -O2 -Wall -Wextra -D_GNU_SOURCE ${WAN_CFLAGS:-} -o "$WAN_BIN" \
		"$WAN_SRC" $flags -lm
}

# wan_rule_add NS IIF MATCH: queue the packets that come in on IIF and match MATCH ("dport" or
# "sport") 853 or 443 to WAN_QUEUE, in NS: native nft, else iptables-nft (both families).
wan_rule_add()
{
	local ns=$1 iif=$2 dir=$3 cmd
	if ip netns exec "$ns" nft -f - 2>/dev/null <<-EOF; then
		table inet benchwan {
			chain pre {
				type filter hook prerouting priority raw; policy accept;
				iifname "$iif" tcp $dir { 443, 853 } queue num $WAN_QUEUE
			}
		}
	EOF
		WAN_RULES+=" $ns:nft"
		return 0
	fi
	for cmd in iptables-nft ip6tables-nft; do
		ip netns exec "$ns" "$cmd" -t raw -A PREROUTING -i "$iif" -p tcp \
			-m multiport --"$dir"s 443,853 -j NFQUEUE --queue-num "$WAN_QUEUE" || return 1
		WAN_RULES+=" $ns:$cmd:$iif:$dir"
	done
}

wan_rules_del()
{
	local r ns kind iif dir
	for r in $WAN_RULES; do
		IFS=: read -r ns kind iif dir <<<"$r"
		case $kind in
		nft) ip netns exec "$ns" nft delete table inet benchwan ;;
		*) ip netns exec "$ns" "$kind" -t raw -D PREROUTING -i "$iif" -p tcp \
			-m multiport --"$dir"s 443,853 -j NFQUEUE --queue-num "$WAN_QUEUE" ;;
		esac
	done
	WAN_RULES=
}

# wan_ready LOG: netdelay said it is bound.
wan_ready()
{
	grep -qs ' ready: ' "$1"
}

# wan_helper_start NS NAME: one netdelay in NS on WAN_QUEUE, half the round trip.
wan_helper_start()
{
	local ns=$1 log="$LAB_DIR/netdelay-$2.log" args
	args=(-q "$WAN_QUEUE" -d "$(wan_half "$WAN_RTT_MS")" -j "$(wan_half "$WAN_JITTER_MS")"
		-l "$WAN_LOSS_PCT" -n "$WAN_LIMIT")
	[ -n "$WAN_SEED" ] && args+=(-s "$((WAN_SEED + ${#WAN_JOBS[@]}))")
	lab_bg "$ns" "$log" "$WAN_BIN" "${args[@]}"
	WAN_JOBS+=("$LAB_BG_PID")
	WAN_LOGS+=("$log")
	if ! LAB_WAIT_PID=$LAB_BG_PID lab_wait_until 50 wan_ready "$log"; then
		echo "netdelay in $2 did not start:"
		lab_indent <"$log"
		return 1
	fi
}

wan_netdelay_start()
{
	wan_build || { echo "building bench/netdelay.c failed"; return 1; }
	# helpers first: with a rule and no listener, the packets would be dropped
	wan_helper_start "$NS_UP" upstream && wan_helper_start "$NS_GW" gateway || return 1
	if ! wan_rule_add "$NS_UP" "$LAB_IF_UP" dport || ! wan_rule_add "$NS_GW" "$LAB_GW_IF_UP" sport
	then
		echo "installing the NFQUEUE rules failed (neither nft queue nor iptables-nft NFQUEUE)"
		return 1
	fi
	WAN_USED=netdelay
}

# wan_start: set the WAN up with WAN_TOOL; 0 also when there is nothing to do (RTT, jitter and
# loss all 0). On failure it prints why and returns 1.
wan_start()
{
	if awk -v r="$WAN_RTT_MS" -v j="$WAN_JITTER_MS" -v l="$WAN_LOSS_PCT" \
		'BEGIN { exit !(r + j + l == 0) }'; then
		return 0
	fi
	case $WAN_TOOL in
	auto) wan_netem_start || wan_netdelay_start ;;
	netem)
		wan_netem_start || { echo "tc qdisc add ... netem failed (no sch_netem?)"; return 1; }
		;;
	netdelay) wan_netdelay_start ;;
	*) echo "unknown WAN tool '$WAN_TOOL' (auto, netem or netdelay)"; return 1 ;;
	esac
}

# wan_stop: rules out first, then the helpers (they let go of what they hold and print their
# counters, kept in WAN_COUNTERS). The lab's cleanup would also do it, without the counters.
wan_stop()
{
	local job log name
	case $WAN_USED in
	netem)
		ip netns exec "$NS_UP" tc qdisc del dev "$LAB_IF_UP" root 2>/dev/null
		ip netns exec "$NS_GW" tc qdisc del dev "$LAB_GW_IF_UP" root 2>/dev/null
		;;
	netdelay)
		wan_rules_del
		for job in "${WAN_JOBS[@]}"; do
			lab_bg_stop "$job"
		done
		WAN_COUNTERS=
		for log in "${WAN_LOGS[@]}"; do
			name=${log##*/netdelay-}
			WAN_COUNTERS+="${WAN_COUNTERS:+$'\n'}${name%.log}: $(grep -h ' exit: ' "$log" |
				sed 's/^netdelay: //')"
		done
		WAN_JOBS=()
		WAN_LOGS=()
		;;
	esac
	# shellcheck disable=SC2034 # for the caller
	WAN_USED_LAST=$WAN_USED
	WAN_USED=
}

# wan_snapshot: netdelay's counters now (SIGUSR1), one line per helper.
wan_snapshot()
{
	local job pid log i n0
	[ "$WAN_USED" = netdelay ] || return 0
	for ((i = 0; i < ${#WAN_JOBS[@]}; i++)); do
		job=${WAN_JOBS[$i]}
		log=${WAN_LOGS[$i]}
		n0=$(grep -c ' now: ' "$log")
		pid=$(lab_bg_cmd_pid "$job") || continue
		kill -USR1 "$pid"
		LAB_WAIT_PID=$job lab_wait_until 20 sh -c "[ \$(grep -c ' now: ' '$log') -gt $n0 ]"
		grep ' now: ' "$log" | tail -n 1
	done
}

# The slow authoritative server: a fourth namespace (NS_AUTH, the lab's: cleaned up with it) on
# a point-to-point link from the upstream, an unbound there that answers every name under
# slow.test with WAN_SLOW_A, and netdelay holding each query into it (UDP :53 in) DELAY ms.
# The upstream forwards slow.test there (WAN_SLOW_UP_CONF), so that each new name under
# slow.test is a miss that takes DELAY ms and more, while it answers its local data at once.
#
#   upstream: unbound DoT, forward-zone slow.test    auth: unbound, slow.test redirect
#   ua 203.0.113.201 ------------------------------- a0 203.0.113.200 (netdelay: DELAY ms in)
WAN_AUTH4=203.0.113.200
WAN_AUTH_PEER4=203.0.113.201
WAN_SLOW_A=203.0.113.77
# WAN_SLOW_UP_CONF: for LAB_UP_EXTRA_CONF: the forward, no query log, and room for thousands of
# requests at once (the lab's outgoing-range of 64 would cap the misses far below that).
# shellcheck disable=SC2034 # used by the scripts that source this file
WAN_SLOW_UP_CONF="	log-queries: no
	outgoing-range: 4096
	num-queries-per-thread: 4096
	local-zone: \"slow.test.\" transparent
forward-zone:
	name: \"slow.test.\"
	forward-addr: $WAN_AUTH4"

# shellcheck disable=SC2317 # called through lab_wait_until
wan_auth_answers()
{
	[ "$(ip netns exec "$NS_UP" timeout 3 dig +time=1 +tries=1 +short @"$WAN_AUTH4" \
		probe.slow.test A 2>/dev/null)" = "$WAN_SLOW_A" ]
}

# wan_slow_auth_start DELAY_MS: the auth namespace, its server and its delay (after lab_setup
# with LAB_UP_EXTRA_CONF=$WAN_SLOW_UP_CONF); then one miss through the upstream, whose time it
# keeps in WAN_SLOW_FIRST_MS. Sets NS_AUTH and WAN_USED=netdelay (wan_stop stops the helper).
# On failure it prints why and returns 1.
wan_slow_auth_start()
{
	local WAN_RTT_MS=$((2 * $1)) WAN_JITTER_MS=0 WAN_LOSS_PCT=0 a t0 t1
	lab_ns_new NS_AUTH auth
	lab_veth "$NS_UP" ua "$NS_AUTH" a0 || { echo "the upstream-auth link"; return 1; }
	if ! ip -n "$NS_UP" addr add "$WAN_AUTH_PEER4" peer "$WAN_AUTH4" dev ua ||
		! ip -n "$NS_AUTH" addr add "$WAN_AUTH4" peer "$WAN_AUTH_PEER4" dev a0; then
		echo "auth addresses"
		return 1
	fi
	{
		lab_unbound_common auth
		cat <<-EOF
			log-queries: no
			interface: $WAN_AUTH4@53
			local-zone: "slow.test." redirect
			local-data: "slow.test. 60 A $WAN_SLOW_A"
			remote-control:
				control-enable: no
		EOF
	} >"$LAB_DIR/auth.conf"
	lab_bg "$NS_AUTH" "$LAB_DIR/auth.log" unbound -d -c "$LAB_DIR/auth.conf"
	if ! LAB_WAIT_PID=$LAB_BG_PID lab_wait_until 100 wan_auth_answers; then
		echo "the auth server did not answer; its log:"
		lab_indent <"$LAB_DIR/auth.log"
		return 1
	fi
	# netdelay's -d is half WAN_RTT_MS
	wan_build || { echo "building bench/netdelay.c failed"; return 1; }
	wan_helper_start "$NS_AUTH" auth || return 1
	WAN_USED=netdelay
	# native nft queue where the kernel has it, else the xtables NFQUEUE target (as above)
	if ! ip netns exec "$NS_AUTH" nft -f - 2>/dev/null <<-EOF; then
		table inet slowauth {
			chain pre {
				type filter hook prerouting priority raw; policy accept;
				iifname "a0" udp dport 53 queue num $WAN_QUEUE
			}
		}
	EOF
		if ! ip netns exec "$NS_AUTH" iptables-nft -t raw -A PREROUTING -i a0 -p udp \
			--dport 53 -j NFQUEUE --queue-num "$WAN_QUEUE"; then
			echo "the auth namespace's queue rule (neither nft queue nor iptables-nft NFQUEUE)"
			return 1
		fi
	fi
	t0=$(date +%s%N)
	a=$(ip netns exec "$NS_GW" timeout 5 dig +time=3 +tries=1 +short @"$LAB_UP4" \
		first.check.slow.test A 2>/dev/null)
	t1=$(date +%s%N)
	if [ "$a" != "$WAN_SLOW_A" ]; then
		echo "the upstream did not resolve first.check.slow.test ('$a')"
		return 1
	fi
	# shellcheck disable=SC2034 # for the caller
	WAN_SLOW_FIRST_MS=$(((t1 - t0) / 1000000))
}
