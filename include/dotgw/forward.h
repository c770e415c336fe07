/*
 * forward.h - per-domain forwarding (--forward [GROUP:]SUFFIX=TARGET): which target a query's
 * name goes to. Rules match by name suffix on label boundaries; the longest suffix wins, and
 * of two of equal length a group's own rule wins over a global one. Targets are shared by the
 * rules that name the same one, so each has one cache partition and one counter. Pure code:
 * no sockets, no logging.
 */
#ifndef DOTGW_FORWARD_H
#define DOTGW_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dotgw/addr.h"
#include "dotgw/dns.h"

#define FORWARD_MAX_RULES   64
#define FORWARD_MAX_TARGETS 16
#define FORWARD_TEXT_MAX    (ADDR_TEXT_MAX + 300)

enum forward_kind {
	FORWARD_UPSTREAM, /* a DoT upstream of cfg->upstreams */
	FORWARD_PLAIN,	  /* unencrypted DNS (UDP, TCP when truncated) to addr */
	FORWARD_ASKED,	  /* the address the client asked: left alone on its way */
};

struct forward_target {
	enum forward_kind kind;
	unsigned int upstream;	     /* FORWARD_UPSTREAM: index into cfg->upstreams, 0-based (while
				      * parsing: the Nth --upstream, or with is_new the Nth new one) */
	bool is_new;		     /* an ADDR#NAME upstream of its own, not in the default set */
	union sockaddr_any addr;     /* FORWARD_PLAIN */
	char text[FORWARD_TEXT_MAX]; /* "plain:192.0.2.1@53", "asked", the upstream's text */
};

struct forward_rule {
	uint8_t name[DNS_MAX_NAME]; /* wire format, lower case */
	uint8_t name_len;
	char group[32];	     /* "" for every client */
	int group_idx;	     /* resolved by forward_resolve_groups: -1 for every client */
	unsigned int target; /* index into the table's targets */
};

struct forward_table {
	struct forward_target targets[FORWARD_MAX_TARGETS];
	size_t n_targets;
	struct forward_rule rules[FORWARD_MAX_RULES];
	size_t n_rules;
};

/*
 * forward_target_parse - "N" (1-based index of an --upstream), "plain:ADDR[@PORT]" (port 53
 * by default) or "asked" into *t. 0; -ENOENT when text is none of these forms (the caller may
 * read it as an ADDR[@PORT]#NAME upstream); -EINVAL when it is one of them but malformed.
 */
int forward_target_parse(struct forward_target *t, const char *text);

/*
 * forward_rule_add - a rule for suffix (text) in group (NULL or "": every client) to target t,
 * which joins the table's targets unless an equal one is there. 0; -EINVAL (a bad name, a
 * group name too long, the same suffix twice for one group), -ENOSPC (too many rules or
 * targets).
 */
int forward_rule_add(struct forward_table *ft, const char *group, const char *suffix,
		     const struct forward_target *t);

/*
 * forward_lookup - the rule for name (wire format) asked by a client of group (-1: none), or
 * NULL: the longest matching suffix, a group's rule before a global one of equal length.
 */
const struct forward_rule *forward_lookup(const struct forward_table *ft, int group,
					  const uint8_t *name, size_t name_len);

/* forward_has_asked - does any rule send names to the asked address? */
bool forward_has_asked(const struct forward_table *ft);

#endif
