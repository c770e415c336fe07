#!/bin/bash
# health.test.sh - /healthz and /readyz on the --metrics listener, and `dotgw --health URL`,
# the probe a container image runs without curl: alive and ready after start; /readyz 503,
# with its reason, while the upstream refuses DoT and queries fail; 200 again once an answer
# came; --health exits 1 with the reason for a 404 and for a closed port.
#
#   client --- gw-c [gateway: dotgw --metrics 127.0.0.1:9853] gw-u --- upstream
#
# Usage: health.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"
lab_setup

URL=http://127.0.0.1:9853

# probe PATH: `dotgw --health URL/PATH` in the gateway; its status and stderr in LAB_RC, LAB_OUT
probe()
{
	lab_run "$NS_GW" "$DOTGW" --health "$URL$1"
}

probe_ok()
{
	probe "$1" && [ "$LAB_RC" = 0 ]
}

probe_fails()
{
	! probe "$1" && [ "$LAB_RC" = 1 ]
}

# upstream_block on|off: the upstream's DoT port answers with TCP resets (on), or normally
upstream_block()
{
	if [ "$1" = on ]; then
		ip netns exec "$NS_UP" nft -f - <<-EOF
			table inet block {
				chain input {
					type filter hook input priority -10;
					tcp dport 853 reject with tcp reset
				}
			}
		EOF
	else
		ip netns exec "$NS_UP" nft delete table inet block
	fi
}

lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" \
	--metrics 127.0.0.1:9853 || lab_finish

lab_ok "--health /healthz exits 0 after start" probe_ok /healthz
lab_ok "--health /readyz exits 0 after start (no query needed an upstream yet)" probe_ok /readyz
lab_ok "--health /metrics exits 0" probe_ok /metrics
lab_ok "--health on an unknown path exits 1" probe_fails /nothing
lab_check_match "...and says why" "404" "$LAB_OUT"
lab_capture "--health to a closed port" ip netns exec "$NS_GW" "$DOTGW" --health \
	http://127.0.0.1:9/readyz
lab_check_eq "--health to a closed port exits 1" 1 "$LAB_RC"
lab_check_match "...and says why" "connect: Connection refused" "$LAB_OUT"
lab_capture "--health with a bad URL" ip netns exec "$NS_GW" "$DOTGW" --health ftp://x/
lab_check_eq "--health with a bad URL exits 1" 1 "$LAB_RC"
lab_check_match "...and names the URL" "'ftp://x/'" "$LAB_OUT"

# No answer before the outage: one within the last HEALTH_READY_MS (30 s) keeps /readyz at
# 200 (an upstream answered within the window), as test_health.c shows; here the failures
# are the only event in the window.
lab_log "the upstream refuses DoT now"
upstream_block on
for i in 1 2 3; do
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" "fail$i.example.test" A +tries=1 +time=5
done
lab_check_eq "queries fail while the upstream refuses" SERVFAIL "$(lab_dig_status)"
lab_ok "/healthz stays 200" probe_ok /healthz
# the main loop samples the counters once a second
lab_ok "/readyz turns 503" lab_wait_until 50 probe_fails /readyz
lab_check_match "...and --health says why" "503.*queries failed \\(SERVFAIL\\).*no upstream answer" \
	"$LAB_OUT"
lab_check_eq "the daemon still runs" 0 "$(lab_pid_alive "$DOTGW_PID"; echo $?)"

lab_log "the upstream answers again"
upstream_block off
answered()
{
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" "back$RANDOM.bench.test" A +tries=1 +time=3
	[ "$(lab_dig_status)" = NOERROR ]
}
lab_ok "queries are answered again" lab_wait_until 100 answered
lab_ok "/readyz is 200 again" lab_wait_until 50 probe_ok /readyz

lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"
lab_ok "--health fails once dotgw is gone" probe_fails /healthz
lab_finish
