#!/bin/bash
# shared_budget.test.sh - with the default --pool-size, the workers of one dotgw share a budget
# of 4 connections per upstream (src/upstream.c: up_budget, up_surplus): in nfqueue mode one
# busy client is one worker's, and that worker may open all 4 to an upstream that is 5 ms or
# more away while the other worker holds none; once the other gets load, it opens its floor
# (4 / 2 workers) and the busy one gives its last connections back, down to its own floor.
#
#   client A 198.51.100.2  (dnsperf, 800 q/s, lands on one queue)  --.
#   client B 198.51.100.x  (dnsperf, 800 q/s, the other queue)    ---+
#     --- gw-c [gateway: dotgw --mode nfqueue --queues 2, default --pool-size] gw-u
#     ===(100 ms round trip on TCP :853: bench/wan.sh's netdelay)=== upstream unbound (DoT)
#
# B's address is the first of 198.51.100.3-22 whose queries the kernel's hash of the
# addresses puts on the other queue than A's (a probe: a name dotgw answers itself, counted in
# /proc/net/netfilter/nfnetlink_queue). Each client keeps about 80 misses outstanding (800 q/s
# x 100 ms); a pool opens another connection once every open one has 16 in flight
# (UPCONN_SPREAD), past 2 only to an upstream 5 ms or more away (up_may_grow).
#
# Counts, sampled every 0.2 s (bounded): the connections open at the upstream's :853 (ss in
# its namespace), and each worker's, told apart by the event loop that watches them (a
# connection's socket is in its worker's epoll from open to close: the epoll fds' tfd lines in
# /proc/PID/fdinfo, matched to the sockets' inodes). Bounds:
# - A alone: its worker opens more than 2 (4: 80 in flight fill 16 on each of 3), the other
#   none; never more than 4 in all (the budget); upstream_handshakes equals what is open.
# - A and B: B's worker opens its floor, 2, though 4 are open already. In all, at most
#   6 = 4 + 2: A's pool has room for 4, no more; B's opens its floor without looking at the
#   total, and past its floor (as A's past its own) only while all hold fewer than 4, which
#   from the moment A's holds 4 they never do again: A's gives back only while all hold more
#   than 4, down to 4. (The race the design allows, two workers past their floors that both
#   see 3 and open, needs a total below 4 while both are past their floors: not here.) Once
#   B's 2 are open, A's gives back its last ones: after the load, 4 are open (2 each), and
#   dotgw made 6 handshakes: none was opened again.
# - Every query answered NOERROR, none lost; dotgw counts no SERVFAIL and exits 0 on SIGTERM.
#
# Usage: shared_budget.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf cc pkg-config iptables-nft ss find
lab_require_dotgw "${1:-}"
# shellcheck source=../../bench/wan.sh
. "$(dirname "$0")/../../bench/wan.sh"

RATE=800        # q/s of each client
OUTSTANDING=200 # dnsperf -q: above what RATE x RTT keeps in flight
A_SECS=8        # client A's load (dnsperf -l)
B_SECS=3        # client B's, started once A's worker has held 4 connections for 5 samples
                # (or after 4 s: while A's load is still on)
BUDGET=4        # CONFIG_POOL_TOTAL
FLOOR=2         # BUDGET / 2 workers
CLIENT_A=$LAB_CLIENT4

LAB_UP_EXTRA_CONF="	log-queries: no"
lab_setup
WAN_RTT_MS=100 WAN_TOOL=netdelay
wan_start || lab_bail "starting the WAN (netdelay)"

for c in a b; do
	awk -v n=$((RATE * A_SECS)) -v c=$c \
		'BEGIN { for (i = 0; i < n; i++) printf "%s%d.bench.test A\n", c, i }' \
		>"$LAB_DIR/$c.names"
done

lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --log-level info --mode nfqueue --queues 2 \
	--scope gateway --interface "$LAB_GW_IF_CLIENT" --cache-size 0 ||
	lab_bail "dotgw did not start"

# queued: "Q0 Q1", the packets queues 0 and 1 got so far (id_sequence)
queued()
{
	# shellcheck disable=SC2016 # awk's fields, not the shell's
	ip netns exec "$NS_GW" awk '$1 == 0 { q0 = $8 } $1 == 1 { q1 = $8 }
		END { print q0 + 0, q1 + 0 }' /proc/net/netfilter/nfnetlink_queue
}

# queue_of ADDR: the queue (0 or 1) a query from ADDR went to (none: no answer or both). The
# name is under invalid., which dotgw answers itself (a locally served zone): the probe opens
# no upstream connection
queue_of()
{
	local b0 b1 a0 a1
	read -r b0 b1 <<<"$(queued)"
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" -b "$1" +tries=1 probe.invalid A
	read -r a0 a1 <<<"$(queued)"
	if [ "$a0" -gt "$b0" ] && [ "$a1" -eq "$b1" ]; then
		echo 0
	elif [ "$a1" -gt "$b1" ] && [ "$a0" -eq "$b0" ]; then
		echo 1
	fi
}

QA=$(queue_of "$CLIENT_A")
[ -n "$QA" ] || lab_bail "a probe from $CLIENT_A did not reach exactly one of the two queues"
CLIENT_B=
for ((i = 3; i < 23; i++)); do
	ip -n "$NS_CLIENT" addr add "198.51.100.$i/24" dev "$LAB_IF_CLIENT" ||
		lab_bail "adding 198.51.100.$i"
	q=$(queue_of "198.51.100.$i")
	if [ -n "$q" ] && [ "$q" != "$QA" ]; then
		CLIENT_B=198.51.100.$i
		break
	fi
done
[ -n "$CLIENT_B" ] || lab_bail "none of 198.51.100.3-22 lands on the queue $CLIENT_A does not"
lab_log "client A $CLIENT_A: queue $QA; client B $CLIENT_B: queue $((1 - QA))"
lab_check_eq "the probes opened no upstream connection (upstream_handshakes)" 0 \
	"$(lab_dotgw_stat_now upstream_handshakes)"

# sample: UP_OPEN, the connections established at the upstream's :853; LOOPS, "EPFD:N" for
# each of dotgw's event loops (epoll fds) that watches N of dotgw's connections to it
sample()
{
	local p=/proc/$DOTGW_PID epolls=() fd link
	UP_OPEN=$(ip netns exec "$NS_UP" ss -tnH state established '( sport = :853 )' | wc -l)
	while read -r fd link; do
		[ "$link" = "anon_inode:[eventpoll]" ] && epolls+=("$p/fdinfo/$fd")
	done < <(find "$p/fd" -mindepth 1 -printf '%f %l\n' 2>/dev/null)
	[ "${#epolls[@]}" -gt 0 ] || { LOOPS=; return; }
	LOOPS=$({
		ip netns exec "$NS_GW" ss -tnHe dst "$LAB_UP4" '( dport = :853 )' 2>/dev/null |
			grep -o 'ino:[0-9]*' | sed 's/ino:/C socket:[/; s/$/]/'
		find "$p/fd" -mindepth 1 -lname 'socket:*' -printf 'F %f %l\n' 2>/dev/null
		grep -H '^tfd:' "${epolls[@]}" 2>/dev/null | sed 's|^.*/fdinfo/\([0-9]*\):tfd: *|T \1 |'
	} | awk '$1 == "C" { c[$2] = 1 } $1 == "F" { ino[$2] = $3 }
		$1 == "T" && ino[$3] in c { n[$2]++ }
		END { for (e in n) printf "%s:%d ", e, n[e] }')
	printf '%s up=%s loops=%s\n' "$(date +%T.%N | cut -c1-12)" "$UP_OPEN" "$LOOPS" \
		>>"$LAB_DIR/samples.log"
}

# loop_count EPFD: that loop's count in the last sample
loop_count()
{
	local e
	for e in $LOOPS; do
		[ "${e%%:*}" = "$1" ] && { echo "${e#*:}"; return; }
	done
	echo 0
}

# others_count EPFD: the connections of the loops other than EPFD in the last sample
others_count()
{
	local e n=0
	for e in $LOOPS; do
		[ "${e%%:*}" = "$1" ] || n=$((n + ${e#*:}))
	done
	echo "$n"
}

# load NAME ADDR SECS: dnsperf from ADDR in the background, each name of NAME.names once, at
# RATE q/s for SECS seconds; its output in NAME.out
load()
{
	lab_bg "$NS_CLIENT" "$LAB_DIR/$1.out" dnsperf -s "$LAB_DECOY4" -a "$2" \
		-d "$LAB_DIR/$1.names" -n 1 -Q "$RATE" -q "$OUTSTANDING" -t 5 -l "$3"
}

# --- A alone -------------------------------------------------------------------------------
read -r q0 q1 <<<"$(queued)"
load a "$CLIENT_A" "$A_SECS"
job_a=$LAB_BG_PID
max_up1=0 busy='' busy_max=0 idle_max=0 full=0
for ((i = 0; i < 20 && full < 5; i++)); do
	lab_sleep 0.2
	sample
	[ "$UP_OPEN" -gt "$max_up1" ] && max_up1=$UP_OPEN
	for e in $LOOPS; do
		[ "${e#*:}" -gt "$busy_max" ] && busy=${e%%:*} busy_max=${e#*:}
	done
	[ -n "$busy" ] && [ "$(others_count "$busy")" -gt "$idle_max" ] &&
		idle_max=$(others_count "$busy")
	[ "$busy_max" -ge "$BUDGET" ] && full=$((full + 1))
	lab_pid_alive "$job_a" || break
done
up1=$UP_OPEN
hs1=$(lab_dotgw_stat_now upstream_handshakes)
read -r a0 a1 <<<"$(queued)"
lab_log "A alone: the busy worker's loop (epoll fd ${busy:-none}) held $busy_max at most," \
	"the others $idle_max; the upstream $max_up1 at most, $up1 at the end;" \
	"upstream_handshakes $hs1; queue 0 got $((a0 - q0)) packets, queue 1 $((a1 - q1))"
if [ "$QA" = 0 ]; then
	lab_check_eq "A's queries all went to queue 0 (packets to queue 1)" 0 $((a1 - q1))
else
	lab_check_eq "A's queries all went to queue 1 (packets to queue 0)" 0 $((a0 - q0))
fi
lab_check_num "A's worker opened more than 2 connections (expected $BUDGET)" \
	"$busy_max" -gt 2
lab_check_eq "the other worker opened none" 0 "$idle_max"
lab_check_num "never more than $BUDGET open at the upstream ($max_up1 at most)" \
	"$max_up1" -le "$BUDGET"
lab_check_eq "upstream_handshakes agrees with what is open at the upstream" "$up1" "$hs1"

# --- A and B -------------------------------------------------------------------------------
read -r q0 q1 <<<"$(queued)"
load b "$CLIENT_B" "$B_SECS"
job_b=$LAB_BG_PID
max_up2=0 b_max=0
for ((i = 0; i < 60; i++)); do
	lab_sleep 0.2
	sample
	[ "$UP_OPEN" -gt "$max_up2" ] && max_up2=$UP_OPEN
	[ "$(others_count "$busy")" -gt "$b_max" ] && b_max=$(others_count "$busy")
	lab_pid_alive "$job_a" || lab_pid_alive "$job_b" || break
done
wait "$job_a" "$job_b"
lab_bg_forget "$job_a"
lab_bg_forget "$job_b"
# the loads are over: what was given back is closed once its last answer came
lab_wait_until 30 sh -c "[ \$(ip netns exec '$NS_UP' ss -tnH state established \
	'( sport = :853 )' | wc -l) -le $BUDGET ]"
sample
hs2=$(lab_dotgw_stat_now upstream_handshakes)
read -r a0 a1 <<<"$(queued)"
lab_log "A and B: B's worker held $b_max at most; the upstream $max_up2 at most; after the" \
	"load $UP_OPEN open (A's worker $(loop_count "$busy"), B's $(others_count "$busy"));" \
	"upstream_handshakes $hs2; queue 0 got $((a0 - q0)) packets, queue 1 $((a1 - q1))"
lab_check_num "both queues got packets (queue 0: $((a0 - q0)), queue 1: $((a1 - q1)))" \
	$(((a0 - q0) * (a1 - q1))) -gt 0
lab_check_eq "B's worker opened its floor ($FLOOR) while A's held $busy_max" "$FLOOR" "$b_max"
lab_check_num "never more than $BUDGET + $FLOOR open at the upstream ($max_up2 at most)" \
	"$max_up2" -le $((BUDGET + FLOOR))
lab_check_eq "A's worker gave back down to its floor, B's kept its floor (A B)" \
	"$FLOOR $FLOOR" "$(loop_count "$busy") $(others_count "$busy")"
lab_check_num "after the load no more than $BUDGET open at the upstream" "$UP_OPEN" -le "$BUDGET"
lab_check_eq "none was opened again (upstream_handshakes = A's most + B's most)" \
	$((busy_max + b_max)) "$hs2"

# --- answers -------------------------------------------------------------------------------
sent_all=0
for c in a b; do
	read -r sent ndone lost ok fail <<<"$(lab_dnsperf_counts "$LAB_DIR/$c.out")"
	lab_log "client $c: sent $sent, completed $ndone, lost $lost, NOERROR $ok, SERVFAIL $fail"
	lab_check_num "client $c sent queries" "$sent" -gt "$RATE"
	sent_all=$((sent_all + sent))
	lab_check_eq "client $c: every query answered NOERROR (completed, NOERROR, lost, SERVFAIL)" \
		"$sent $sent 0 0" "$ndone $ok $lost $fail"
done
lab_dotgw_stat_now answered >/dev/null
lab_check_eq "dotgw answered every query sent, none SERVFAIL (answered; servfail)" \
	"$sent_all 0" "$(lab_dotgw_stat answered) $(lab_dotgw_stat servfail)"
lab_stop_dotgw
lab_check_eq "dotgw exits 0 on SIGTERM (a sanitizer's report would make it 1)" 0 "$?"
wan_stop
lab_log "netdelay: $WAN_COUNTERS"
if [ "$LAB_FAILED" -gt 0 ]; then
	lab_log "the samples (time, open at the upstream, each loop's EPFD:connections):"
	lab_indent <"$LAB_DIR/samples.log"
fi
lab_finish
