#!/bin/bash
# bpf_dataplane.test.sh - dotgw warns of BPF programs that may route DNS around the host's
# netfilter (Cilium, Calico eBPF: docs/kubernetes.md), and says when they go: a minimal tc
# program, compiled here with clang -target bpf and attached with tc to the clsact hooks of
# an interface named like Cilium's (cilium_host) and of a plain one; a tcx program (kernel >=
# 6.6, attached by bpf_tcx.c, built here) on one named like a Cilium pod's (lxc*); an XDP
# program (generic mode) on a plain interface. Nothing is
# reported before; the warnings name interface, hook, program and data plane; the gauge
# dotgw_bpf_dataplane_programs counts them; DNS is still answered through dotgw; detached
# programs are reported gone. First with the defaults (a check at start and on SIGHUP), then
# with the periodic check (--dataplane-check 1), then with it off (0); last under a seccomp
# filter that denies bpf() (nobpf.c, as a container runtime's default profile does): tcx
# cannot be listed, and cilium_host stands in for Cilium's programs.
#
#   client --- gw-c [gateway: dotgw --metrics; veths cilium_host/cilium_net, dp-plain0/1,
#                    lxc1234/lxc1234p, all inside this namespace] gw-u --- upstream (DoT)
#
# Usage: bpf_dataplane.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" tc clang cc curl
lab_require_dotgw "${1:-}"
lab_setup

HERE=$(dirname "$0")
URL=http://127.0.0.1:9853/metrics

# the programs: a tc one in an ELF object (section "tc"), and the tcx helper
cat >"$LAB_DIR/prog.c" <<-'EOF'
	__attribute__((section("tc"), used)) int dp_test(void *skb)
	{
		return -1; /* TC_ACT_UNSPEC: go on as if nothing were here */
	}
	__attribute__((section("xdp"), used)) int dp_xdp(void *ctx)
	{
		return 2; /* XDP_PASS */
	}
	char _license[] __attribute__((section("license"), used)) = "GPL";
EOF
clang -O2 -target bpf -c "$LAB_DIR/prog.c" -o "$LAB_DIR/prog.o" 2>"$LAB_DIR/clang.err" ||
	lab_skip "clang -target bpf cannot compile a tc program: $(cat "$LAB_DIR/clang.err")"
cc -O -o "$LAB_DIR/bpf_tcx" "$HERE/bpf_tcx.c" || lab_bail "building bpf_tcx.c"
cc -O -o "$LAB_DIR/nobpf" "$HERE/nobpf.c" -lseccomp || lab_bail "building nobpf.c"

for pair in cilium_host:cilium_net dp-plain0:dp-plain1 lxc1234:lxc1234p; do
	if ! ip -n "$NS_GW" link add "${pair%%:*}" type veth peer name "${pair##*:}" ||
		! ip -n "$NS_GW" link set "${pair%%:*}" up ||
		! ip -n "$NS_GW" link set "${pair##*:}" up; then
		lab_bail "veth $pair"
	fi
done
# tc_attach IFACE ingress|egress / tc_detach IFACE ingress|egress
tc_attach()
{
	ip netns exec "$NS_GW" tc qdisc replace dev "$1" clsact &&
		ip netns exec "$NS_GW" tc filter add dev "$1" "$2" bpf da obj "$LAB_DIR/prog.o" sec tc
}
tc_detach()
{
	ip netns exec "$NS_GW" tc filter del dev "$1" "$2"
}
# can this kernel and iproute2 load it at all? (a scratch veth)
ip -n "$NS_GW" link add dp-try0 type veth peer name dp-try1 || lab_bail "veth dp-try0"
tc_attach dp-try0 ingress >"$LAB_DIR/tc.err" 2>&1 ||
	lab_skip "tc cannot load a BPF program here: $(head -n 3 "$LAB_DIR/tc.err")"
ip -n "$NS_GW" link del dp-try0

metric()
{
	ip netns exec "$NS_GW" timeout 5 curl -s "$URL" |
		sed -n "s/^dotgw_bpf_dataplane_programs{dataplane=\"$1\"} //p"
}
logged()
{
	grep -Eq -- "$1" "$DOTGW_LOG"
}
# resolves: the client's query through dotgw is answered by the upstream, not the decoy
resolves()
{
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A
	lab_check_eq "$1" "NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" "$(lab_dig_summary A)"
}
# reloaded N: SIGHUP, and wait for the Nth "reloaded" line
reloaded()
{
	kill -HUP "$DOTGW_PID"
	lab_wait_until 50 sh -c "[ \$(grep -c 'reloaded' '$DOTGW_LOG') -ge $1 ]"
}
CIL="'prog.o:\\[tc\\]' \\(id [0-9]+\\) on 'cilium_host' tc ingress, data plane cilium"
PLAIN="'prog.o:\\[tc\\]' \\(id [0-9]+\\) on 'dp-plain0' tc egress, data plane unknown"
WHY="it sees packets before the host's netfilter and may route pod or host DNS around it, "
WHY+="unseen by dotgw \\(see docs/kubernetes.md\\)"

lab_log "defaults: a check at start and on each reload"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" \
	--metrics 127.0.0.1:9853 || lab_finish
lab_ok "without BPF programs: the check ran" lab_wait_until 50 logged "BPF data plane check: "
lab_notok "...and reported nothing" logged "^(warn|info): BPF program|data plane (cilium|calico)"
lab_check_eq "...gauge cilium 0" 0 "$(metric cilium)"
lab_check_eq "...gauge unknown 0" 0 "$(metric unknown)"
resolves "DNS answered through dotgw"

lab_ok "tc program on cilium_host ingress" tc_attach cilium_host ingress
lab_ok "tc program on dp-plain0 egress" tc_attach dp-plain0 egress
lab_notok "no report before the next check (the default interval is 60 s)" \
	logged "^warn: BPF program"
lab_ok "SIGHUP: reloaded" reloaded 1
lab_check_match "warning: the cilium_host program, its hook, data plane and meaning" \
	"^warn: BPF program $CIL: $WHY" "$(cat "$DOTGW_LOG")"
lab_check_match "warning: the dp-plain0 program, data plane unknown" \
	"^warn: BPF program $PLAIN: $WHY" "$(cat "$DOTGW_LOG")"
lab_check_eq "gauge cilium 1" 1 "$(metric cilium)"
lab_check_eq "gauge unknown 1" 1 "$(metric unknown)"
lab_check_eq "gauge calico 0" 0 "$(metric calico)"
resolves "DNS still answered through dotgw with the programs attached"
lab_check_eq "the decoy saw no query" 0 "$(lab_decoy_count)"
lab_ok "SIGHUP again: reloaded" reloaded 2
lab_check_eq "each program warned of once" 2 "$(grep -c '^warn: BPF program' "$DOTGW_LOG")"

lab_ok "the dp-plain0 program detached" tc_detach dp-plain0 egress
lab_ok "SIGHUP: reloaded" reloaded 3
lab_check_match "info: the dp-plain0 program is gone" "^info: BPF program $PLAIN: gone" \
	"$(cat "$DOTGW_LOG")"
lab_check_eq "gauge unknown 0" 0 "$(metric unknown)"
lab_check_eq "gauge cilium still 1" 1 "$(metric cilium)"
lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"

lab_log "--dataplane-check 1: the periodic check"
CONF="$LAB_DIR/dotgw.conf"
echo "dataplane-check = 1" >"$CONF"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --config "$CONF" --scope gateway \
	--interface "$LAB_GW_IF_CLIENT" --metrics 127.0.0.1:9853 || lab_finish
lab_ok "the cilium_host program still attached: warned of at start" \
	lab_wait_until 50 logged "^warn: BPF program $CIL"
lab_ok "tc program on dp-plain0 egress again" tc_attach dp-plain0 egress
lab_ok "warned of within the interval, no signal" \
	lab_wait_until 50 logged "^warn: BPF program $PLAIN"
lab_check_eq "gauge unknown 1" 1 "$(metric unknown)"

lab_bg "$NS_GW" "$LAB_DIR/tcx.out" "$LAB_DIR/bpf_tcx" lxc1234 ingress
TCX_JOB=$LAB_BG_PID
LAB_WAIT_PID=$TCX_JOB lab_wait_until 50 test -s "$LAB_DIR/tcx.out"
TCX_ID=$(head -n 1 "$LAB_DIR/tcx.out")
if [[ "$TCX_ID" =~ ^[0-9]+$ ]]; then
	TCX="\\(id $TCX_ID\\) on 'lxc1234' tcx ingress, data plane cilium"
	lab_ok "tcx program $TCX_ID on lxc1234 (a Cilium pod's): reported (info: Cilium is known)" \
		lab_wait_until 50 logged "^info: BPF program $TCX: another of a data plane already"
	lab_check_eq "gauge cilium 2" 2 "$(metric cilium)"
	resolves "DNS still answered through dotgw with a tcx program attached"
	lab_bg_stop "$TCX_JOB"
	lab_ok "tcx program detached: gone" lab_wait_until 50 logged "^info: BPF program $TCX: gone"
else
	wait "$TCX_JOB"
	rc=$?
	lab_bg_forget "$TCX_JOB"
	if [ "$rc" = 77 ]; then
		lab_log "this kernel has no tcx (before 6.6): tcx not tested"
	else
		lab_fail "bpf_tcx lxc1234 ingress (exit $rc)" "$(cat "$LAB_DIR/tcx.out")"
	fi
fi
XDP="\\(id [0-9]+\\) on 'dp-plain1' xdp, data plane unknown"
lab_ok "XDP program (generic) on dp-plain1" \
	ip -n "$NS_GW" link set dev dp-plain1 xdpgeneric obj "$LAB_DIR/prog.o" sec xdp
lab_ok "warned of" lab_wait_until 50 logged "^warn: BPF program $XDP: $WHY"
lab_check_eq "gauge unknown 2" 2 "$(metric unknown)"
lab_ok "XDP program detached" ip -n "$NS_GW" link set dev dp-plain1 xdpgeneric off
lab_ok "reported gone" lab_wait_until 50 logged "^info: BPF program $XDP: gone"
lab_ok "the dp-plain0 program detached" tc_detach dp-plain0 egress
lab_ok "reported gone within the interval" \
	lab_wait_until 50 logged "^info: BPF program $PLAIN: gone"
lab_check_eq "gauge unknown 0" 0 "$(metric unknown)"
lab_check_eq "gauge cilium 1" 1 "$(metric cilium)"
lab_check_eq "each program warned of once" 3 "$(grep -c '^warn: BPF program' "$DOTGW_LOG")"

lab_log "dataplane-check = 0 (reload): off"
echo "dataplane-check = 0" >"$CONF"
lab_ok "SIGHUP: reloaded" reloaded 1
lab_check_eq "no gauge when off" "" "$(metric cilium)"
lab_ok "tc program on dp-plain0 egress again" tc_attach dp-plain0 egress
lab_ok "SIGHUP: reloaded" reloaded 2
lab_check_eq "not reported when off, on reload" 1 \
	"$(grep -Ec "^warn: BPF program $PLAIN" "$DOTGW_LOG")"
resolves "DNS answered through dotgw"
lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"

lab_log "bpf() denied by a seccomp filter: tcx cannot be listed"
lab_ok "the cilium_host program detached" tc_detach cilium_host ingress
echo "dataplane-check = 1" >"$CONF"
REAL_DOTGW=$DOTGW
DOTGW=$LAB_DIR/nobpf # lab_start_dotgw runs "$DOTGW" ARGS...: nobpf runs the real one
lab_start_dotgw "$REAL_DOTGW" "${LAB_DOTGW_ARGS[@]}" --config "$CONF" --scope gateway \
	--interface "$LAB_GW_IF_CLIENT" --metrics 127.0.0.1:9853 || lab_finish
DOTGW=$REAL_DOTGW
DENIED="^info: BPF data plane check: tcx and netkit programs cannot be listed here "
DENIED+="\\(bpf\\(BPF_PROG_QUERY\\): Operation not permitted"
lab_ok "says so at info level" lab_wait_until 50 logged "$DENIED"
UNLISTED="^warn: interface 'cilium_host' of data plane cilium, whose tcx programs cannot be "
UNLISTED+="listed: $WHY"
lab_ok "warns of cilium_host as Cilium's, its tcx programs unlisted" \
	lab_wait_until 50 logged "$UNLISTED"
lab_ok "tc programs are still listed" lab_wait_until 50 logged "^warn: BPF program $PLAIN: $WHY"
lab_check_eq "gauge cilium 1" 1 "$(metric cilium)"
lab_check_eq "gauge unknown 1" 1 "$(metric unknown)"
resolves "DNS answered through dotgw"
lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"
lab_finish
