/*
 * inflight.h - each client's share of the queries in flight, so that one client cannot hold
 * every --max-inflight slot or every upstream connection slot (random names under a zone
 * that never answers would otherwise starve everyone else). Clients are keyed like the rate
 * limiter's (the address cut to a prefix). A client's queries beyond its share wait, in
 * order, up to another share of them, and start as its earlier ones end; beyond that they are
 * refused. The table has a fixed number of slots, at least two per query allowed in flight:
 * a slot is taken while its client has a query counted and free otherwise, so a client's slot
 * is never given to another while it counts. A new client that finds every slot of its probe
 * window taken (rare: the table is at most half full) goes uncounted rather than refused.
 * A client's share may grow (inflight_set_growth): while it has queries waiting, each of its
 * answered queries raises its share by one, so the share doubles per round trip as long as
 * answers come back (a far upstream is not capped at the default share); each query that
 * times out halves it, never below the default. Queries that never come back (the flood the
 * share is for) therefore keep it at the default. A slot's share starts at the default.
 * Pure code: waiting queries are linked through a struct inflight_wait embedded in them;
 * starting them is the caller's.
 */
#ifndef DOTGW_INFLIGHT_H
#define DOTGW_INFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct inflight;

struct inflight_wait {
	/* in its slot's wait list while it waits; else free for the caller's own lists */
	TAILQ_ENTRY(inflight_wait) link;
	int slot; /* its client's slot; -1: not counted */
};

/* A list of waiting queries: a slot's here, any list of the caller's elsewhere. */
TAILQ_HEAD(inflight_list, inflight_wait);

/*
 * inflight_new - a table for at most max queries in flight in all, share per client, clients
 * keyed by the first prefix4 / prefix6 bits of their address. 0 or -EINVAL / -ENOMEM.
 */
int inflight_new(struct inflight **out, unsigned int max, unsigned int share, unsigned int prefix4,
		 unsigned int prefix6, uint32_t seed);
/* inflight_free - the table; queries still linked to it are forgotten (w->slot is stale). */
void inflight_free(struct inflight *t);

/*
 * inflight_take - one more query of the client (family AF_INET/AF_INET6, addr 4 or 16 octets),
 * which embeds w. Returns 0 when it is counted and may start; 1 when it must wait (the client
 * has its share in flight): inflight_put hands it back once it may start; -EBUSY when the
 * client's wait list is full too (w is untouched: refuse the query); -ENOSPC when every slot
 * its key may use is held by other clients (w->slot = -1: start it uncounted). With force
 * the query is counted at once, over the share or not (0 or -ENOSPC).
 */
int inflight_take(struct inflight *t, int family, const uint8_t *addr, struct inflight_wait *w,
		  bool force);

/*
 * inflight_put - the counted query w is over. Returns the client's oldest waiting query, now
 * counted in w's place (the caller starts it), or NULL.
 */
struct inflight_wait *inflight_put(struct inflight *t, struct inflight_wait *w);

/*
 * inflight_set_growth - let each client's share grow up to max_share (not below the table's
 * share; equal: no growth, the default). Shares grown past it are cut to it.
 */
void inflight_set_growth(struct inflight *t, unsigned int max_share);

/* inflight_answered - the counted query w got its answer: its client's share may grow. */
void inflight_answered(struct inflight *t, const struct inflight_wait *w);

/*
 * inflight_over_share - the counted query w's client has more in flight than the default share
 * (its share grew): w is part of its excess. False for a query not counted.
 */
bool inflight_over_share(const struct inflight *t, const struct inflight_wait *w);

/* inflight_timed_out - the counted query w timed out: its client's share halves. */
void inflight_timed_out(struct inflight *t, const struct inflight_wait *w);

/*
 * inflight_admit - after inflight_put of a query of slot (w->slot before the put): the oldest
 * waiting query of that client, now counted, when its share has room for it; else NULL. Call
 * it until NULL.
 */
struct inflight_wait *inflight_admit(struct inflight *t, int slot);

/* inflight_unwait - the waiting query w gives up (its deadline, its client gone). */
void inflight_unwait(struct inflight *t, struct inflight_wait *w);

/* inflight_same - would t count clients as max, share, prefix4 and prefix6 say? */
bool inflight_same(const struct inflight *t, unsigned int max, unsigned int share,
		   unsigned int prefix4, unsigned int prefix6);

#endif
