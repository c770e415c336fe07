#!/bin/bash
# ruleset_equiv.test.sh - the reference ruleset nftables/dotgw.nft is what dotgw really
# installs: "dotgw --scope both --interface lan0" with default options in one namespace and "nft -f dotgw.nft"
# in another list the same "inet dotgw" table, handles and counter values aside.
#
#   [gateway: dotgw --scope both --interface lan0] ->  nft list table inet dotgw  --.
#                                                                   +-- diff
#   [ref: nft -f nftables/dotgw.nft] -> nft list table inet dotgw --'
#
# Usage: ruleset_equiv.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" diff
lab_require_dotgw "${1:-}"

REFERENCE="$(dirname "$0")/../../nftables/dotgw.nft"
if [ ! -r "$REFERENCE" ]; then
	lab_bail "the reference ruleset $REFERENCE is missing"
fi
REFERENCE=$(readlink -f -- "$REFERENCE")

lab_setup
lab_ns_new NS_REF ref

# normalise: drop handles and other trailing comments ("# progname dotgw" of an owned table),
# counter values, blank lines and trailing blanks, and the table flag "owner" when it stands
# alone: a table that belongs to the process that made it cannot come from a file (it would
# vanish when nft exits), so only dotgw's copy can have it; and dotgw's table comment, which
# names the run (its generation: docs/ARCHITECTURE.md, "Two instances").
normalise()
{
	sed -E -e 's/[[:space:]]+# .*$//' \
		-e 's/counter packets [0-9]+ bytes [0-9]+/counter/g' \
		-e 's/[[:space:]]+$//' \
		-e '/^$/d' \
		-e '/^[[:space:]]*flags owner$/d' \
		-e '/^[[:space:]]*comment "dotgw generation=[0-9]+ slot=[01]"$/d'
}

# lan0 need not exist: iifname matches by name
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope both --interface lan0 || lab_finish
ip netns exec "$NS_GW" nft list table inet dotgw >"$LAB_DIR/installed.raw" 2>&1
lab_check_eq "nft lists dotgw's table" 0 "$?"

if ip netns exec "$NS_REF" nft -f "$REFERENCE" >"$LAB_DIR/reference.err" 2>&1; then
	lab_pass "nft -f $REFERENCE loads"
else
	lab_fail "nft -f $REFERENCE loads" "$(lab_indent <"$LAB_DIR/reference.err")"
fi
ip netns exec "$NS_REF" nft list table inet dotgw >"$LAB_DIR/reference.raw" 2>&1
lab_check_eq "nft lists the reference table" 0 "$?"

normalise <"$LAB_DIR/installed.raw" >"$LAB_DIR/installed.nft"
normalise <"$LAB_DIR/reference.raw" >"$LAB_DIR/reference.nft"
if diff -u --label "reference (nft -f ${REFERENCE##*/})" --label "installed (dotgw --scope both --interface lan0)" \
	"$LAB_DIR/reference.nft" "$LAB_DIR/installed.nft" >"$LAB_DIR/ruleset.diff"; then
	lab_pass "dotgw installs exactly the reference ruleset"
else
	lab_fail "dotgw installs exactly the reference ruleset" "$(lab_indent <"$LAB_DIR/ruleset.diff")"
fi

lab_stop_dotgw
lab_check_eq "dotgw exits 0 on SIGTERM" 0 "$?"
lab_finish
