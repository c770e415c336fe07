/*
 * egress_rules.h - the egress table: dotgw's second nftables table (family inet), apart from
 * the capture table so that replacing that one never touches it. For each client group with
 * egress policy (index i among the policy groups):
 *   set e<i>_4 { type ipv4_addr; flags timeout; size max; }, set e<i>_6 (ipv6_addr),
 *   counter c<i> (the connections it dropped),
 *   chain g<i>: ct state established,related accept; udp/tcp dport 53 accept (dotgw captures
 *   and polices DNS itself); ip daddr @e<i>_4 accept; ip6 daddr @e<i>_6 accept; one accept per
 *   static --egress-allow prefix; counter name c<i> drop.
 * Base chains send each group's clients there, in policy-group order so that the first group
 * that holds a client decides, as for DNS: "forward" (gateway scope: by source prefix and
 * input interface) and "output" (host scope: by source prefix; dotgw's own sockets, with the
 * bypass mark, are let through first). Groups without egress policy "return" (accept here).
 *
 * Applying keeps what exists: sets (and their elements), counters and chains are created only
 * when missing; chains have their rules replaced; objects of groups that are gone are deleted;
 * all in one transaction. Fail open: the table is owned by the socket (NFT_TABLE_F_OWNER),
 * dies with the process, and every later change (set elements included) must come through
 * that socket; a start replaces any older table. Fail closed: no owner, and a restarted dotgw
 * adopts the table with its elements.
 */
#ifndef DOTGW_EGRESS_RULES_H
#define DOTGW_EGRESS_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dotgw/addr.h"

#define EGRESS_RULES_MAX_GROUPS 16

struct mnl_socket;

struct egress_rules_group {
	bool egress; /* false: a group without egress policy (its clients "return") */
	const struct cidr *clients;
	size_t n_clients;
	const char (*ifnames)[16]; /* clients arriving on these interfaces (gateway scope) */
	size_t n_ifnames;
	const struct cidr *allow; /* --egress-allow: always reachable */
	size_t n_allow;
};

struct egress_rules_config {
	const char *table;
	unsigned int scope; /* RULESET_SCOPE_* */
	bool fail_closed;
	bool fresh; /* replace whatever table of that name exists (a fail-open start) */
	uint32_t bypass_mark;
	uint32_t max; /* elements per set */
	struct egress_rules_group groups[EGRESS_RULES_MAX_GROUPS];
	size_t n_groups;
};

/* egress_rules_set_name - "e<i>_4" / "e<i>_6" into buf (at least 16 octets). */
void egress_rules_set_name(char *buf, size_t len, size_t group, int family);

/*
 * egress_rules_apply - make the table what cfg says, through nl (which then owns it, fail
 * open). 0 or -errno; on error nothing changed.
 */
int egress_rules_apply(struct mnl_socket *nl, const struct egress_rules_config *cfg);

/* egress_rules_counter - the packets counter c<group> dropped so far; 0 or -errno. */
int egress_rules_counter(struct mnl_socket *nl, const char *table, size_t group, uint64_t *packets);

/*
 * egress_rules_show - print group's elements (both families), one per line: address, time
 * left. The number printed, or -errno (-ENOENT: no such table or set).
 */
int egress_rules_show(struct mnl_socket *nl, const char *table, size_t group, FILE *out);

#endif
