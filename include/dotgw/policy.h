/*
 * policy.h - client groups (by source prefix) with domain rules and their own upstreams.
 * A query from a client in a group is checked against the group's rules by name suffix (on
 * label boundaries: "example.com" covers "example.com" and "a.example.com"); the longest
 * matching suffix wins. A group with allow rules allows only what they match. Clients in no
 * group are not policed. Pure code.
 */
#ifndef DOTGW_POLICY_H
#define DOTGW_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dotgw/addr.h"
#include "dotgw/dns.h"

#define POLICY_MAX_GROUPS 16
#define POLICY_MAX_CIDRS  16
#define POLICY_MAX_RULES  64

enum policy_action {
	POLICY_PASS,	 /* resolve it */
	POLICY_REFUSED,	 /* answer REFUSED */
	POLICY_NXDOMAIN, /* answer NXDOMAIN */
	POLICY_SINKHOLE, /* answer with a fixed address (A or AAAA; other types: no data) */
};

struct policy_rule {
	uint8_t name[DNS_MAX_NAME]; /* wire format, lower case */
	uint8_t name_len;
	enum policy_action action;
	int sink_family; /* POLICY_SINKHOLE: AF_INET or AF_INET6 */
	uint8_t sink[16];
};

struct policy_group {
	char name[32];
	struct cidr cidrs[POLICY_MAX_CIDRS];
	size_t n_cidrs;
	char ifnames[POLICY_MAX_CIDRS][16]; /* clients arriving on interfaces of these names */
	size_t n_ifs;
	struct policy_rule rules[POLICY_MAX_RULES];
	size_t n_rules;
	bool allow_list;    /* it has allow rules: whatever they do not match is REFUSED */
	uint32_t upstreams; /* bit i: the i-th --upstream may serve it; 0: all */
	/* --egress: connections only to what its answers gave, and to these prefixes */
	bool egress;
	struct cidr egress_allow[POLICY_MAX_CIDRS];
	size_t n_egress_allow;
};

struct policy {
	struct policy_group groups[POLICY_MAX_GROUPS];
	size_t n_groups;
};

/*
 * policy_group_of - index of the first group that holds the client: one of its prefixes
 * holds addr, or it arrived on an interface of one of its names (ifname; NULL when unknown).
 * Interfaces are matched by name, so that one deleted and made again (a new index) stays in
 * its group. -1: none.
 */
int policy_group_of(const struct policy *p, int family, const uint8_t *addr, const char *ifname);

/* policy_has_interfaces - does any group name an interface? (then interface names are needed) */
bool policy_has_interfaces(const struct policy *p);

/* policy_check - what group g does with a query for name (wire format); *rule gets the
 * matching rule (NULL when none matched). */
enum policy_action policy_check(const struct policy_group *g, const uint8_t *name, size_t name_len,
				const struct policy_rule **rule);

/*
 * policy_check_answer - what group g does with the answer in buf (parsed into m), so that an
 * alias cannot cloak a name the group may not resolve: every owner name of the answer section
 * and every CNAME target is checked as a question would be (deny rules and the allow list);
 * DNAME owners and targets, which are suffixes rather than names, only against the rule
 * that matches them, if any. The first name that is not POLICY_PASS decides; *rule gets its
 * rule (NULL: the allow list). An answer that cannot be read is POLICY_REFUSED.
 */
enum policy_action policy_check_answer(const struct policy_group *g, const uint8_t *buf,
				       const struct dns_msg *m, const struct policy_rule **rule);

/* policy_group_polices - does group g have rules at all? */
bool policy_group_polices(const struct policy_group *g);

/* policy_name_parse - "example.com" or "example.com." to lower-case wire format. 0/-EINVAL. */
int policy_name_parse(const char *text, uint8_t *out, uint8_t *out_len);

#endif
