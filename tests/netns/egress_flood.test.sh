#!/bin/bash
# egress_flood.test.sh - an --egress group under a flood of unique names (issue 16: "the set
# bound holds under a flood of unique names, with dotgw's memory flat"). The upstream serves
# 20,000 names, each with an AAAA record of its own; dnsperf asks them once each from a client
# of an --egress group with --egress-max 1000 (and a small answer cache, so that every bound
# dotgw has is reached within the first 5,000 names). Checked: every query is answered
# (NOERROR), the kernel's set never holds more than 1000 elements, what did not fit is counted
# (dotgw_egress_overflow_total + dotgw_egress_refused_total), and dotgw's peak RSS (VmHWM)
# after 20,000 names is within 2 MiB of the peak after 5,000: memory stops growing at the bound
# (not compared for a sanitizer build, whose quarantine keeps freed memory).
# Rates are bounded (dnsperf -Q), nothing is timed.
#
# Usage: egress_flood.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf curl
lab_require_dotgw "${1:-}"
N=20000
FIRST=5000
MAX=1000
RATE=${RATE:-1000}
lab_tmpdir
ZONE="$LAB_DIR/flood.test.zone"
{
	echo '$TTL 3600'
	echo 'flood.test. SOA ns.flood.test. host.flood.test. 1 3600 600 86400 300'
	echo 'flood.test. NS ns.flood.test.'
	echo 'ns.flood.test. A 203.0.113.2'
	for ((i = 0; i < N; i++)); do
		printf 'n%d.flood.test. AAAA 2001:db8:f:%x::%x\n' "$i" $((i / 65536)) $((i % 65536))
	done
} >"$ZONE"
chmod 644 "$ZONE"
for ((i = 0; i < FIRST; i++)); do echo "n$i.flood.test AAAA"; done >"$LAB_DIR/q1.txt"
for ((i = FIRST; i < N; i++)); do echo "n$i.flood.test AAAA"; done >"$LAB_DIR/q2.txt"
# shellcheck disable=SC2034 # read by lab_start_upstream
LAB_UP_EXTRA_CONF="
	local-zone: \"flood.test.\" transparent
auth-zone:
	name: \"flood.test.\"
	zonefile: \"$ZONE\"
	for-upstream: yes
	for-downstream: no
	fallback-enabled: no"
lab_setup

lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --log-level info --mode tproxy --scope gateway \
	--interface "$LAB_GW_IF_CLIENT" --timeout 5000 --cache-size 256k \
	--group "c=$LAB_CLIENT4/32" --egress c --egress-max "$MAX" \
	--metrics 127.0.0.1:9853 || lab_finish
lab_check_match "the group's IPv6 set has size $MAX" "size $MAX" \
	"$(lab_in "$NS_GW" nft list set inet dotgw_egress e0_6)"

# flood FILE COUNT: dnsperf asks every name of FILE once; all answered, all NOERROR
flood()
{
	local out
	out=$(lab_in "$NS_CLIENT" timeout 60 dnsperf -s "$LAB_DECOY4" -d "$1" -n 1 -Q "$RATE" \
		-c 4 -t 5 2>&1)
	lab_check_match "$2 unique names: every query answered" \
		"Queries completed: +$2 \(100\.00%\)" "$out"
	lab_check_match "$2 unique names: ...all NOERROR" "Response codes: +NOERROR $2 \(100\.00%\)" \
		"$out"
}
elements() { lab_in "$NS_GW" nft list set inet dotgw_egress e0_6 | grep -o '2001:db8:f:' | wc -l; }
hwm() { awk '$1 == "VmHWM:" { print $2 }' "/proc/$DOTGW_PID/status"; }
metric()
{
	lab_in "$NS_GW" curl -s http://127.0.0.1:9853/metrics |
		awk -v m="$1{group=\"c\"}" '$1 == m { print $2 }'
}

flood "$LAB_DIR/q1.txt" "$FIRST"
e1=$(elements)
h1=$(hwm)
of1=$(metric dotgw_egress_overflow_total)
rf1=$(metric dotgw_egress_refused_total)
o1=$((of1 + rf1))
lab_log "after $FIRST names: set $e1 elements, overflow $of1 + refused $rf1, VmHWM $h1 kB"
lab_check_eq "after $FIRST names: the set holds exactly --egress-max elements" "$MAX" "$e1"
lab_check_num "...the rest counted (overflow + refused)" "$o1" -ge $((FIRST - MAX))

flood "$LAB_DIR/q2.txt" $((N - FIRST))
e2=$(elements)
h2=$(hwm)
of2=$(metric dotgw_egress_overflow_total)
rf2=$(metric dotgw_egress_refused_total)
o2=$((of2 + rf2))
lab_log "after $N names: set $e2 elements, overflow $of2 + refused $rf2, VmHWM $h2 kB"
lab_check_eq "after $N names: the set still holds --egress-max elements" "$MAX" "$e2"
lab_check_num "...the rest counted (overflow + refused)" "$o2" -ge $((N - MAX))
if grep -qa -e __asan_init -e __tsan_init -e __msan_init -e __hwasan_init "$DOTGW"; then
	# a sanitizer's quarantine keeps freed memory: RSS says nothing about dotgw's own
	lab_log "a sanitizer build: peak RSS not compared ($h1 kB, $h2 kB)"
else
	lab_check_num "...peak RSS grew by less than 2 MiB from $FIRST to $N names ($h1, $h2 kB)" \
		$((h2 - h1)) -lt 2048
fi
lab_check_match "the overflow was logged" \
	"(holds --egress-max addresses|not added to its set .* the set is full)" \
	"$(grep -m 5 egress: "$DOTGW_LOG")"
lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"
lab_finish
