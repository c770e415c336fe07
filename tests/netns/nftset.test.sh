#!/bin/bash
# nftset.test.sh - nftset.c against the kernel, in a namespace of its own: elements added in
# acknowledged batches (600 in three batches, IPv6), an add that sets a timeout anew, a full
# set (the refused element fails with ENFILE, the others of its batch get in), a missing set,
# a cancelled request. tests/unit/nftset_check.c makes the calls; this script makes the table
# and reads the sets back with nft.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools ip nft
lab_require_dotgw "${1:-}"
CHECK=$(dirname "$DOTGW")/tests/nftset_check
[ -x "$CHECK" ] || lab_bail "$CHECK is missing (built with the tests)"

lab_ns_new NS sets
T=dotgw_settest
lab_in "$NS" nft "add table inet $T; \
	add set inet $T e4 { type ipv4_addr; flags timeout; size 1000; }; \
	add set inet $T e6 { type ipv6_addr; flags timeout; }; \
	add set inet $T small { type ipv4_addr; flags timeout; size 2; }" ||
	lab_bail "cannot make the sets"

lab_in "$NS" "$CHECK" "$T" >"$LAB_DIR/check.out" 2>&1
rc=$?
lab_indent <"$LAB_DIR/check.out"
lab_check_eq "nftset_check: every call did what it should" 0 "$rc"

elements()
{
	lab_in "$NS" nft -j list set inet "$T" "$1" |
		python3 -c 'import json,sys
d=json.load(sys.stdin)["nftables"]
s=[x["set"] for x in d if "set" in x][0]
for e in s.get("elem", []):
    e = e["elem"] if isinstance(e, dict) and "elem" in e else e
    if isinstance(e, dict):
        print(e["val"], e.get("timeout", 0), e.get("expires", 0))
    else:
        print(e, 0, 0)'
}
elements e4 >"$LAB_DIR/e4"
elements e6 >"$LAB_DIR/e6"
elements small >"$LAB_DIR/small"
lab_check_eq "e4: the 600 elements (the refreshed and the waited-for ones are among them)" 600 \
	"$(wc -l <"$LAB_DIR/e4")"
lab_check_eq "e4: 203.0.113.87 is in (the third batch)" 1 "$(grep -c '^203\.0\.113\.87 ' "$LAB_DIR/e4")"
lab_check_eq "e4: the cancelled 203.0.113.254 is not" 0 "$(grep -c '^203\.0\.113\.254 ' "$LAB_DIR/e4")"
lab_check_eq "e4: 198.51.100.1's timeout is the second add's, 3600 s" "3600" \
	"$(awk '$1 == "198.51.100.1" {print $2}' "$LAB_DIR/e4")"
lab_check_eq "e6: 10 elements" 10 "$(wc -l <"$LAB_DIR/e6")"
lab_check_eq "small: the two that fit" "192.0.2.1 192.0.2.2" \
	"$(awk '{print $1}' "$LAB_DIR/small" | sort | xargs)"
lab_finish
