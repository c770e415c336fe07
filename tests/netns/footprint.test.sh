#!/bin/bash
# footprint.test.sh - what a running dotgw has mapped: without --metrics, no libmicrohttpd (nor
# the GnuTLS it brings), and no libsystemd (readiness goes by notify.c): together about 3.7 MiB
# resident that a gateway did not use (bench/RESULTS.md, issue 17's memory goal). With
# --metrics, libmicrohttpd is loaded and serves.
#
#   client --- gw-c [gateway: dotgw, then dotgw --metrics 127.0.0.1:9853] gw-u --- upstream
#
# Usage: footprint.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" curl
lab_require_dotgw "${1:-}"
lab_setup

# mapped LIB: does the daemon have a file named LIB* mapped?
mapped()
{
	grep -q "/$1" "/proc/$DOTGW_PID/maps"
}

lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" ||
	lab_finish
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A
lab_check_eq "an answer through dotgw" "NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" \
	"$(lab_dig_summary A)"
lab_ok "libssl is mapped (the check sees libraries)" mapped libssl.so
lab_notok "no libmicrohttpd without --metrics" mapped libmicrohttpd.so
lab_notok "no libgnutls without --metrics" mapped libgnutls.so
lab_notok "no libsystemd" mapped libsystemd.so
lab_log "without --metrics: $(grep -E '^Vm(RSS|HWM)' "/proc/$DOTGW_PID/status" | tr -s '\t\n ' ' ')"
lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"

lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" \
	--metrics 127.0.0.1:9853 || lab_finish
lab_ok "libmicrohttpd is loaded with --metrics" mapped libmicrohttpd.so
lab_run "$NS_GW" curl -sS --max-time 5 http://127.0.0.1:9853/metrics
lab_check_match "/metrics answers" '^dotgw_queries_total' "$LAB_OUT"
lab_run "$NS_GW" curl -sS --max-time 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:9853/x
lab_check_eq "404 elsewhere" 404 "$LAB_OUT"
lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"
lab_finish
