/*
 * egress_gate.h - per worker, the gate an answer to a client of an --egress group passes: the
 * A and AAAA records of its question's CNAME chain go into the group's nftables sets (the
 * egress table, egress_rules.h) before the answer may go to the client, so the client's first
 * SYN never meets a set that does not have the address yet. Addresses whose element lives on
 * long enough (egress.c's mirror) cost nothing; the rest go in one acknowledged batch per loop
 * iteration (nftset.c).
 *
 * Invariants: a hold's done runs once, from the loop, never from egress_gate_hold; a hold
 * whose requests are pending is cancelled (egress_gate_cancel) before its memory goes.
 */
#ifndef DOTGW_EGRESS_GATE_H
#define DOTGW_EGRESS_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "dotgw/egress.h"
#include "dotgw/nftset.h"
#include "dotgw/policy.h"

struct config;
struct loop;
struct egress_gate;
struct egress_gate_req;

/* How long held answers waited for the kernel's acknowledgement: bucket bounds in µs. */
#define EGRESS_HOLD_BUCKETS 10
extern const unsigned int egress_hold_bounds_us[EGRESS_HOLD_BUCKETS - 1];

/* Per group, what the gate did (its mirror's counters, and the kernel's refusals). */
struct egress_gate_stats {
	uint64_t elements, adds, refreshes, expirations, overflows; /* the mirror's */
	uint64_t refused; /* elements the kernel refused (set full: ENFILE) or that failed */
	uint64_t held;	  /* answers that waited for the kernel */
	uint64_t hold[EGRESS_HOLD_BUCKETS]; /* ... by waiting time (not cumulative) */
	uint64_t hold_sum_us;
};

/* An answer waiting for its addresses to be in the sets; embedded in the caller's query. */
struct egress_hold {
	void (*done)(struct egress_hold *h, int err); /* err: the first refusal, or 0 */
	/* private */
	struct egress_gate *gate;
	struct egress_gate_req *reqs;
	uint64_t start_us; /* CLOCK_MONOTONIC when the hold began */
	unsigned int n, pending;
	int group, err;
};

/*
 * egress_gate_new - the gate of one worker, adding to the sets of table through link;
 * cfg's groups with egress get a mirror each. 0 or -errno.
 */
int egress_gate_new(struct egress_gate **out, struct loop *loop, struct nftset_link *link,
		    const char *table, const struct config *cfg);
void egress_gate_free(struct egress_gate *g);

/* egress_gate_reload - cfg's groups from now on (mirrors start empty). 0 or -errno. */
int egress_gate_reload(struct egress_gate *g, const struct config *cfg);

/* egress_gate_polices - does group (-1: none) have egress policy? */
bool egress_gate_polices(const struct egress_gate *g, int group);

/*
 * egress_gate_hold - the answer ans (len octets) goes to a client of group: 0 when it may go
 * at once (no address needs the kernel), 1 when h->done will say (h must stay put until
 * then), -errno when it cannot be checked (the caller answers SERVFAIL).
 */
int egress_gate_hold(struct egress_gate *g, int group, const uint8_t *ans, size_t len,
		     struct egress_hold *h);

/* egress_gate_cancel - forget h's pending requests; done will not run. Accepts a done h. */
void egress_gate_cancel(struct egress_hold *h);

/* egress_gate_stats - group's counters so far (zeros for a group without egress). */
void egress_gate_stats(const struct egress_gate *g, int group, struct egress_gate_stats *out);

#endif
