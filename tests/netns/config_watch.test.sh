#!/bin/bash
# config_watch.test.sh - --watch-config: a change of the configuration file reloads it without
# a restart, the way a Kubernetes ConfigMap volume changes (the kubelet's atomic writer), the
# way an editor saves (a temporary file renamed over it) and by a write in place; one reload
# per change, none when the bytes are the same, none for a bad file (the running configuration
# keeps serving), none at all without the option. The observable change: a --deny sinkhole for
# www.example.test (192.0.2.99 instead of the upstream's 203.0.113.80).
#
#   client (dig, dnsperf) --- gw-c [gateway: dotgw --config DIR/dotgw.conf --watch-config]
#                                   gw-u --- upstream 203.0.113.2 (DoT)
#
#   DIR (as the kubelet lays out a ConfigMap volume):
#     ..2026_12_04_10_00_00.000000001/dotgw.conf
#     ..data -> ..2026_12_04_10_00_00.000000001
#     dotgw.conf -> ..data/dotgw.conf
#   an update: a new timestamp directory, "..data_tmp" renamed over "..data", the old one gone.
#
# Usage: config_watch.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf
lab_require_dotgw "${1:-}"
lab_setup

SINK=192.0.2.99
CM="$LAB_DIR/configmap"
mkdir -m 755 "$CM"

# conf [deny|bad]: the configuration text; with "deny" www.example.test is sinkholed, with
# "bad" it has an upstream that cannot parse.
conf()
{
	printf 'upstream = %s\nca-file = %s\nscope = gateway\ninterface = %s\n' \
		"$LAB_UP4#$LAB_AUTH_NAME" "$LAB_CA" "$LAB_GW_IF_CLIENT"
	printf 'cache-size = 0\nlog-level = debug\ngroup = lab=198.51.100.0/24\n'
	case ${1:-} in
	deny) printf 'deny = lab:www.example.test=%s\n' "$SINK" ;;
	bad) printf 'deny = lab:www.example.test=%s\nupstream = 203.0.113.999\n' "$SINK" ;;
	esac
}

# kubelet_update [deny|bad]: what the kubelet's atomic writer does for a ConfigMap update.
STAMP=0
kubelet_update()
{
	local old new
	old=$(readlink "$CM/..data" 2>/dev/null)
	STAMP=$((STAMP + 1))
	new=$(printf '..2026_12_04_10_00_%02d.%09d' "$STAMP" "$STAMP")
	mkdir -m 755 "$CM/$new" && conf "$@" >"$CM/$new/dotgw.conf" &&
		chmod 644 "$CM/$new/dotgw.conf" &&
		ln -s "$new" "$CM/..data_tmp" &&
		mv -T "$CM/..data_tmp" "$CM/..data" || return 1
	[ -L "$CM/dotgw.conf" ] || ln -s ..data/dotgw.conf "$CM/dotgw.conf"
	[ -z "$old" ] || rm -rf -- "${CM:?}/$old"
}

answer()
{
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A +short
	printf '%s' "$LAB_OUT"
}

nreloads()
{
	grep -c 'reloaded' "$DOTGW_LOG"
}

# wait_reloads N: until the log has N "reloaded" lines (at most 10 s)
wait_reloads()
{
	LAB_WAIT_PID=$DOTGW_PID lab_wait_until 100 sh -c "[ \$(grep -c reloaded '$DOTGW_LOG') -ge $1 ]"
}

# settle: longer than a burst's check takes (CFGWATCH_SETTLE_MS, 300 ms) several times over
settle()
{
	lab_sleep 1.5
}

for ((i = 0; i < 1500; i++)); do
	echo "www.example.test A"
done >"$LAB_DIR/queries.txt"

# --- 1. the kubelet's way ------------------------------------------------------------------
kubelet_update || lab_bail "lab: laying out the ConfigMap directory"
lab_start_dotgw --config "$CM/dotgw.conf" --watch-config || lab_finish
pid=$DOTGW_PID
lab_check_eq "kubelet: before the update, the upstream's answer" "$LAB_UP_A" "$(answer)"
lab_check_eq "kubelet: no reload at start" 0 "$(nreloads)"

# about 5 s at 300 q/s, bounded in count and time; the update lands in the middle
lab_bg "$NS_CLIENT" "$LAB_DIR/dnsperf.out" dnsperf -s "$LAB_DECOY4" -d "$LAB_DIR/queries.txt" \
	-n 1 -Q 300 -l 20 -t 3
load=$LAB_BG_PID
lab_sleep 1.5
kubelet_update deny || lab_fail "lab: the ConfigMap update"
lab_ok "kubelet: the update is reloaded" wait_reloads 1
wait "$load"
lab_bg_forget "$load"
out=$(cat "$LAB_DIR/dnsperf.out")
sent=$(sed -n 's/^ *Queries sent: *\([0-9]*\).*/\1/p' <<<"$out")
lost=$(sed -n 's/^ *Queries lost: *\([0-9]*\).*/\1/p' <<<"$out")
noerror=$(sed -n 's/.*NOERROR \([0-9]*\).*/\1/p' <<<"$out" | head -n 1)
lab_log "kubelet: under load: sent=$sent lost=$lost noerror=$noerror"
lab_check_eq "kubelet: dnsperf sent every query" 1500 "$sent"
lab_check_eq "kubelet: no query lost across the reload" 0 "$lost"
lab_check_eq "kubelet: every query answered NOERROR" "$sent" "$noerror"
lab_check_eq "kubelet: after the update, the sinkhole's answer" "$SINK" "$(answer)"
settle
lab_check_eq "kubelet: one update, one reload" 1 "$(nreloads)"
lab_check_eq "kubelet: one 'changed: reloading' line" 1 \
	"$(grep -c "config file '$CM/dotgw.conf' changed: reloading" "$DOTGW_LOG")"
lab_check_eq "kubelet: the same process (no restart)" "$pid" "$(lab_ns_procs "$NS_GW" dotgw)"
lab_check_eq "kubelet: 'ready' once (no restart)" 1 "$(grep -cw ready "$DOTGW_LOG")"

# a bad update: refused, the running configuration stays
kubelet_update bad || lab_fail "lab: the bad ConfigMap update"
lab_ok "kubelet: a bad update is refused" \
	lab_wait_until 100 grep -q 'reload failed' "$DOTGW_LOG"
lab_ok "kubelet: the refusal names the bad value" grep -q '203.0.113.999' "$DOTGW_LOG"
lab_check_eq "kubelet: after the bad update, still the sinkhole" "$SINK" "$(answer)"
lab_check_eq "kubelet: no reload for the bad file" 1 "$(nreloads)"
# the same bytes again (a new timestamp directory): nothing to do
kubelet_update bad || lab_fail "lab: the same ConfigMap update again"
lab_ok "kubelet: the same content is noticed as unchanged" \
	lab_wait_until 50 grep -q 'content is unchanged: not reloading' "$DOTGW_LOG"
lab_check_eq "kubelet: one refusal only" 1 "$(grep -c 'reload failed' "$DOTGW_LOG")"
# the fix: back to no sinkhole
kubelet_update || lab_fail "lab: the fixing ConfigMap update"
lab_ok "kubelet: the fixed file is reloaded" wait_reloads 2
lab_check_eq "kubelet: after the fix, the upstream's answer" "$LAB_UP_A" "$(answer)"
lab_check_eq "kubelet: still the same process" "$pid" "$(lab_ns_procs "$NS_GW" dotgw)"
lab_stop_dotgw
lab_check_eq "kubelet: dotgw exits 0" 0 "$?"

# --- 2. a plain file: in place, and renamed over ----------------------------------------------
PLAIN="$LAB_DIR/plain"
mkdir -m 755 "$PLAIN"
conf >"$PLAIN/dotgw.conf"
chmod 644 "$PLAIN/dotgw.conf"
lab_start_dotgw --config "$PLAIN/dotgw.conf" --watch-config || lab_finish
lab_check_eq "plain: at start, the upstream's answer" "$LAB_UP_A" "$(answer)"
# in place: truncated and written through one open file
conf deny >"$PLAIN/dotgw.conf"
lab_ok "plain: a write in place is reloaded" wait_reloads 1
lab_check_eq "plain: after the write in place, the sinkhole's answer" "$SINK" "$(answer)"
settle
lab_check_eq "plain: one write, one reload" 1 "$(nreloads)"
# an editor's save: a temporary file in the same directory, renamed over the file
conf >"$PLAIN/.dotgw.conf.swp"
chmod 644 "$PLAIN/.dotgw.conf.swp"
mv "$PLAIN/.dotgw.conf.swp" "$PLAIN/dotgw.conf"
lab_ok "plain: a file renamed over it is reloaded" wait_reloads 2
lab_check_eq "plain: after the rename, the upstream's answer" "$LAB_UP_A" "$(answer)"
settle
lab_check_eq "plain: one rename, one reload" 2 "$(nreloads)"
# another file in the directory changes: not looked at
echo x >"$PLAIN/other"
settle
lab_check_eq "plain: another file's change reloads nothing" 2 "$(nreloads)"
lab_stop_dotgw
lab_check_eq "plain: dotgw exits 0" 0 "$?"

# --- 3. without --watch-config: nothing happens until SIGHUP --------------------------------
conf >"$PLAIN/dotgw.conf"
lab_start_dotgw --config "$PLAIN/dotgw.conf" || lab_finish
conf deny >"$PLAIN/dotgw.conf"
settle
lab_check_eq "no option: a changed file is not reloaded" 0 "$(nreloads)"
lab_check_eq "no option: still the upstream's answer" "$LAB_UP_A" "$(answer)"
kill -HUP "$DOTGW_PID"
lab_ok "no option: SIGHUP reloads it" wait_reloads 1
lab_check_eq "no option: after SIGHUP, the sinkhole's answer" "$SINK" "$(answer)"
lab_stop_dotgw
lab_check_eq "no option: dotgw exits 0" 0 "$?"

# --- 4. --watch-config needs a file ------------------------------------------------------------
lab_capture "dotgw --config none --watch-config --check-config" \
	"$DOTGW" --config none --watch-config --check-config
lab_check_num "--watch-config without a file is refused" "$LAB_RC" -ne 0
lab_check_match "the refusal names --watch-config" 'watch-config' "$LAB_OUT"
lab_finish
