/*
 * ddr.h - --upstream asked: each client's own choice of resolver, kept and encrypted, by
 * verified Discovery of Designated Resolvers (RFC 9462).
 *
 * For each resolver address that clients ask (a query's original destination), dotgw asks
 * that address "_dns.resolver.arpa SVCB" in plain UDP, from a socket with the bypass mark.
 * A DoT designation (svcb.h) is accepted only by verified discovery (RFC 9462 4.2): the
 * designated resolver's certificate must be valid for the SVCB TargetName and also cover the
 * asked IP address (tls.c checks both). From then on queries asked of that address go to the
 * designated resolver over a pool of its own; until then, and for addresses without a
 * verified designation, they go to the configured upstreams: never in plaintext.
 *
 * One table per worker, at most --asked-max addresses, least recently used forgotten first.
 * A designation is asked again when its SVCB TTL runs out (kept within DDR_TTL_MIN and
 * DDR_TTL_MAX); a designated resolver is dropped after DDR_MAX_FAILS failed queries in a row
 * and its address asked again only after a back-off that doubles up to DDR_BACKOFF_MAX.
 */
#ifndef DOTGW_DDR_H
#define DOTGW_DDR_H

#include <stddef.h>
#include <stdint.h>

#include "dotgw/addr.h"
#include "dotgw/config.h"
#include "dotgw/loop.h"
#include "dotgw/stats.h"
#include "dotgw/upstream.h"

#define DDR_TTL_MIN   60    /* seconds a designation (or its absence) is kept at least */
#define DDR_TTL_MAX   86400 /* ...and at most */
#define DDR_MAX_FAILS 3	    /* failed queries in a row that drop a designated resolver */
#define DDR_BACKOFF_MIN                                                                       \
	60		     /* seconds before a dropped, rejected or silent address is asked \
				again; doubled each time... */
#define DDR_BACKOFF_MAX 3600 /* ...up to this */

struct ddr;
struct ddr_pool; /* a verified designated resolver's pool, as a query holds it */

/*
 * ddr_new - the table of one worker. cfg's pool settings are copied (the copy lives as long
 * as pools made with it); like is the worker's pool of configured upstreams, whose TLS
 * context (trust anchors) the designated resolvers' pools share. 0 or -errno.
 */
int ddr_new(struct ddr **out, struct loop *loop, const struct config *cfg, struct stats *stats,
	    struct upstream_pool *like);

/*
 * ddr_reload - from now on, cfg and like: every designation is forgotten (asked again, with
 * the new trust anchors); pools with queries in flight drain first. With cfg->upstream_asked
 * off, ddr_route finds nothing from now on.
 */
void ddr_reload(struct ddr *d, const struct config *cfg, struct upstream_pool *like);

/*
 * ddr_route - where a query asked of address asked goes: the verified designated resolver's
 * pool (returned; *via its name for logs), or NULL: the configured upstreams. An address not
 * in the table is asked for its designation now. The pool stays valid at least while a query
 * is in flight on it.
 */
struct ddr_pool *ddr_route(struct ddr *d, const union sockaddr_any *asked, const char **via);

/* ddr_pool_upstream - the upstream pool of dp (to submit to and cancel on). */
struct upstream_pool *ddr_pool_upstream(const struct ddr_pool *dp);
/* ddr_pool_addr - the designated resolver's address and port (for dnstap). */
const struct sockaddr *ddr_pool_addr(const struct ddr_pool *dp);

/*
 * ddr_done - a query sent to dp ended: err 0 (answered) or -errno (it failed there: the
 * caller sends it to the configured upstreams). Counts it; failures in a row drop dp.
 */
void ddr_done(struct ddr_pool *dp, int err);

/* What the metrics show of one asked address (summed over the workers by worker.c). */
struct ddr_snapshot {
	char asked[ADDR_TEXT_MAX];
	char designated[sizeof(((struct upstream_config *)0)->text)]; /* "" when none */
	const char *state; /* "asking", "verifying", "verified", "none", "rejected", "failed" */
	uint64_t queries, failures;
};

/* ddr_snapshot - up to max entries of the table into out (from any thread); their count. */
size_t ddr_snapshot(struct ddr *d, struct ddr_snapshot *out, size_t max);

/* ddr_free - close everything (after every query that used it was dropped); NULL is fine. */
void ddr_free(struct ddr *d);

#endif
