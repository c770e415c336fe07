#!/bin/bash
# caps.test.sh - once running, dotgw is an unprivileged user holding exactly CAP_NET_ADMIN and
# CAP_NET_BIND_SERVICE (0x1400) in its effective, permitted and bounding sets, nothing ambient,
# no_new_privs and a seccomp filter, in every thread; and it still answers.
#
#   client --- gw-c [gateway: dotgw --scope both] gw-u --- upstream 203.0.113.2 (DoT @853)
#                                                 gw-d --- decoy 192.0.2.53
#
# Usage: caps.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" getent
lab_require_dotgw "${1:-}"
lab_setup

CAPS=0000000000001400 # CAP_NET_ADMIN (12) | CAP_NET_BIND_SERVICE (10)
NO_CAPS=0000000000000000

# The default user: dotgw if it exists, else nobody.
if getent passwd dotgw >/dev/null; then
	USER_NAME=dotgw
else
	USER_NAME=nobody
fi
USER_UID=$(getent passwd "$USER_NAME" | cut -d: -f3)

# field FILE NAME: the value(s) of "NAME:" in a /proc status file, tabs made single spaces.
field()
{
	sed -n "s/^$2:[[:space:]]*//p" "$1" | tr -s '\t ' '  '
}

lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope both --interface "$LAB_GW_IF_CLIENT" || lab_finish

check_task()
{
	local what=$1 status=$2 gids
	if [ ! -r "$status" ]; then
		lab_fail "$what: $status is not readable"
		return
	fi
	lab_check_eq "$what: Uid (real, effective, saved, fs) is $USER_NAME" \
		"$USER_UID $USER_UID $USER_UID $USER_UID" "$(field "$status" Uid)"
	gids=$(field "$status" Gid)
	lab_check_nomatch "$what: no Gid is 0 ($gids)" '(^| )0( |$)' "$gids"
	lab_check_nomatch "$what: not in the root group (Groups: $(field "$status" Groups))" \
		'(^| )0( |$)' "$(field "$status" Groups)"
	lab_check_eq "$what: CapEff" "$CAPS" "$(field "$status" CapEff)"
	lab_check_eq "$what: CapPrm" "$CAPS" "$(field "$status" CapPrm)"
	lab_check_eq "$what: CapBnd" "$CAPS" "$(field "$status" CapBnd)"
	lab_check_eq "$what: CapAmb" "$NO_CAPS" "$(field "$status" CapAmb)"
	# src/sandbox.c's filter (mode 2: filter), and no_new_privs
	lab_check_eq "$what: Seccomp" 2 "$(field "$status" Seccomp)"
	lab_check_eq "$what: NoNewPrivs" 1 "$(field "$status" NoNewPrivs)"
}

# check_all LABEL: the process and each of its threads (capabilities belong to threads: each
# one must have dropped them, including threads started later).
check_all()
{
	local task tid
	lab_log "$1: CapInh $(field "/proc/$DOTGW_PID/status" CapInh)," \
		"NoNewPrivs $(field "/proc/$DOTGW_PID/status" NoNewPrivs)," \
		"$(field "/proc/$DOTGW_PID/status" Threads) thread(s)"
	check_task "$1: dotgw" "/proc/$DOTGW_PID/status"
	for task in /proc/"$DOTGW_PID"/task/*; do
		tid=${task##*/}
		[ "$tid" = "$DOTGW_PID" ] && continue
		check_task "$1: thread $tid" "$task/status"
	done
}

lab_log "dotgw runs as pid $DOTGW_PID; expected user $USER_NAME (uid $USER_UID)"
check_all "after start"

lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A
lab_check_eq "still answers a client over UDP" "NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" \
	"$(lab_dig_summary A)"
lab_dig "$NS_CLIENT" @"$LAB_DECOY6" www.example.test AAAA +tcp
lab_check_eq "still answers a client over TCP" "NOERROR $LAB_UP_AAAA from $LAB_DECOY6#53 (TCP)" \
	"$(lab_dig_summary AAAA)"
lab_dig "$NS_GW" @"$LAB_DECOY4" www.example.test A
lab_check_eq "still answers the host" "NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" \
	"$(lab_dig_summary A)"
lab_check_eq "nothing reached the decoy" 0 "$(lab_decoy_count)"
check_all "after queries"

lab_stop_dotgw
lab_check_eq "dotgw exits 0 on SIGTERM (it removes its ruleset unprivileged)" 0 "$?"
lab_notok "no inet dotgw table is left" lab_dotgw_table_exists

lab_finish
