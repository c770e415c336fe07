#!/bin/bash
# lifecycle.test.sh - what dotgw leaves behind: after SIGTERM or SIGINT nothing (no nft table,
# no fwmark rule, routing table 853 empty); after SIGKILL its policy routing stays, and so does
# its table unless the table has the owner flag (then the kernel removes it with the process);
# a restart replaces them without duplicating anything; a bad option fails at once, names the
# option and installs nothing.
#
#   client --- gw-c [gateway: dotgw] gw-u --- upstream 203.0.113.2 (DoT @853)
#                                    gw-d --- decoy 192.0.2.53
#
# dotgw installs: nft table "inet dotgw", "ip rule fwmark 0xd07 lookup 853" (IPv4 and IPv6) and
# "local default dev lo table 853" (IPv4 and IPv6).
#
# Usage: lifecycle.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"
lab_setup

ROUTE_TABLE=853

# fwmark_rules -4|-6: how many fwmark rules the gateway has.
fwmark_rules()
{
	ip -n "$NS_GW" "$1" rule show | grep -c fwmark
}

# table_routes -4|-6: the routes in table 853 (nothing when the table is empty or absent).
table_routes()
{
	ip -n "$NS_GW" "$1" route show table "$ROUTE_TABLE" 2>/dev/null
}

expect_clean()
{
	lab_notok "$1: no inet dotgw table" lab_dotgw_table_exists
	lab_check_eq "$1: no IPv4 fwmark rule" 0 "$(fwmark_rules -4)"
	lab_check_eq "$1: no IPv6 fwmark rule" 0 "$(fwmark_rules -6)"
	lab_check_eq "$1: IPv4 table $ROUTE_TABLE is empty" "" "$(table_routes -4)"
	lab_check_eq "$1: IPv6 table $ROUTE_TABLE is empty" "" "$(table_routes -6)"
}

# expect_installed LABEL: exactly one of each, and the rule count of a fresh start.
expect_installed()
{
	lab_ok "$1: the inet dotgw table exists" lab_dotgw_table_exists
	lab_check_eq "$1: one IPv4 fwmark rule" 1 "$(fwmark_rules -4)"
	lab_check_eq "$1: one IPv6 fwmark rule" 1 "$(fwmark_rules -6)"
	lab_check_match "$1: the IPv4 fwmark rule is 0xd07 -> $ROUTE_TABLE" \
		"fwmark 0xd07 lookup $ROUTE_TABLE" "$(ip -n "$NS_GW" -4 rule show)"
	lab_check_match "$1: the IPv6 fwmark rule is 0xd07 -> $ROUTE_TABLE" \
		"fwmark 0xd07 lookup $ROUTE_TABLE" "$(ip -n "$NS_GW" -6 rule show)"
	lab_check_match "$1: IPv4 table $ROUTE_TABLE has the local default route" \
		'^local (default|0\.0\.0\.0/0) dev lo' "$(table_routes -4)"
	lab_check_match "$1: IPv6 table $ROUTE_TABLE has the local default route" \
		'^local (default|::/0) dev lo' "$(table_routes -6)"
	lab_check_eq "$1: one route in IPv4 table $ROUTE_TABLE" 1 "$(table_routes -4 | wc -l)"
	lab_check_eq "$1: one route in IPv6 table $ROUTE_TABLE" 1 "$(table_routes -6 | wc -l)"
	if [ -n "${FRESH_RULES:-}" ]; then
		lab_check_eq "$1: as many nft rules as after a fresh start" "$FRESH_RULES" \
			"$(lab_dotgw_rule_count)"
	fi
}

expect_answers()
{
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A
	lab_check_eq "$1: a client query is answered by the upstream" \
		"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" "$(lab_dig_summary A)"
	lab_dig "$NS_GW" @"$LAB_DECOY6" www.example.test AAAA
	lab_check_eq "$1: a host query is answered by the upstream" \
		"NOERROR $LAB_UP_AAAA from $LAB_DECOY6#53 (UDP)" "$(lab_dig_summary AAAA)"
}

expect_clean "before dotgw"

lab_log "fresh start, then SIGTERM"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope both --interface "$LAB_GW_IF_CLIENT" || lab_finish
FRESH_RULES=$(lab_dotgw_rule_count)
lab_check_num "fresh start: the table has rules" "$FRESH_RULES" -gt 0
expect_installed "fresh start"
expect_answers "fresh start"
lab_stop_dotgw TERM
lab_check_eq "SIGTERM: exit status 0" 0 "$?"
lab_check_match "SIGTERM: a stats: line was logged" 'stats:.*queries=[0-9]+' "$(cat "$DOTGW_LOG")"
expect_clean "after SIGTERM"

# shellcheck disable=SC2317 # called through lab_wait_until
table_gone()
{
	! lab_dotgw_table_exists
}

lab_log "SIGKILL leaves the policy routing (and the table unless it is owned); a restart" \
	"replaces them"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope both --interface "$LAB_GW_IF_CLIENT" || lab_finish
OWNED=no
if ip netns exec "$NS_GW" nft list table inet dotgw | grep -Eq '^[[:space:]]*flags .*owner'; then
	OWNED=yes
fi
lab_stop_dotgw KILL
lab_check_eq "SIGKILL: killed (status 137)" 137 "$?"
if [ "$OWNED" = yes ]; then
	# NFT_TABLE_F_OWNER: the kernel deletes the table when its owner's netlink socket
	# closes, so a dead dotgw cannot leave DNS captured with nobody to answer.
	lab_log "dotgw's table has the owner flag"
	lab_ok "after SIGKILL: the kernel removed the owned table" lab_wait_until 30 table_gone
else
	lab_ok "after SIGKILL: the inet dotgw table stays" lab_dotgw_table_exists
fi
lab_log "left behind: $(fwmark_rules -4) IPv4 and $(fwmark_rules -6) IPv6 fwmark rules," \
	"$(lab_dotgw_rule_count) nft rules"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope both --interface "$LAB_GW_IF_CLIENT" || lab_finish
expect_installed "restart after SIGKILL"
expect_answers "restart after SIGKILL"
lab_stop_dotgw TERM
lab_check_eq "SIGTERM after the restart: exit status 0" 0 "$?"
expect_clean "after the restart and SIGTERM"

lab_log "SIGINT"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope both --interface "$LAB_GW_IF_CLIENT" || lab_finish
expect_installed "before SIGINT"
lab_stop_dotgw INT
lab_check_eq "SIGINT: exit status 0" 0 "$?"
expect_clean "after SIGINT"

# bad_option LABEL REGEX ARGS...: dotgw ARGS must fail at once with a message matching REGEX.
bad_option()
{
	local label=$1 regex=$2
	shift 2
	LAB_RUN_TIMEOUT=10 lab_run "$NS_GW" "$DOTGW" "$@"
	lab_check_num "$label: exits non-zero (not by timeout)" "$LAB_RC" -ne 0
	lab_check_num "$label: exits at once" "$LAB_RC" -ne 124
	lab_check_match "$label: the message names it" "$regex" "$LAB_OUT"
	expect_clean "$label"
}

lab_log "bad options"
bad_option "--scope nowhere" 'nowhere|--scope' "${LAB_DOTGW_ARGS[@]}" --scope nowhere
bad_option "--upstream 999.1.1.1" '999\.1\.1\.1|--upstream' --mode tproxy --scope both \
	--upstream 999.1.1.1 --ca-file "$LAB_CA" --log-level debug
bad_option "--upstream 999.1.1.1 after a good one" '999\.1\.1\.1|--upstream' \
	"${LAB_DOTGW_ARGS[@]}" --scope both --upstream 999.1.1.1
bad_option "--bogus" 'bogus' "${LAB_DOTGW_ARGS[@]}" --scope both --bogus
bad_option "--mode nonsense" 'nonsense|--mode' --mode nonsense --scope both \
	--upstream "$LAB_UP4#$LAB_AUTH_NAME" --ca-file "$LAB_CA"

# the transparent listeners' port held by another program (no SO_REUSEPORT): a clear error
# naming the port, exit 1 (not a crash), nothing left installed
lab_bg "$NS_GW" "$LAB_DIR/holder.out" python3 -c 'import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 10053)); s.listen(1); print("bound", flush=True); time.sleep(30)'
holder=$LAB_BG_PID
LAB_WAIT_PID=$holder lab_wait_until 50 grep -q bound "$LAB_DIR/holder.out"
bad_option "the tproxy port taken by another program" '10053.*(in use|Address)|(in use|Address).*10053' \
	"${LAB_DOTGW_ARGS[@]}" --mode tproxy --scope both --interface "$LAB_GW_IF_CLIENT"
lab_check_eq "the tproxy port taken: exit status 1" 1 "$LAB_RC"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null

lab_finish
