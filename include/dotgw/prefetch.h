/*
 * prefetch.h - refreshing cache entries before they expire. A cache hit on an entry in the
 * last part of its lifetime (prefetch_due) answers the client from the cache at once, and the
 * cache marks the entry as being refreshed (cache_lookup_refresh); the frontend then hands the
 * query here, and one background query goes upstream whose answer replaces the entry.
 *
 * A refresh is nobody's query: it counts in no client's in-flight share and never answers a
 * client. Each worker keeps at most max_inflight / 8 of them in flight (prefetch_room); beyond
 * that hits go unrefreshed. An answer that cannot be stored (an error, TTL 0) or none at all
 * unmarks the entry, so a later hit may try again; a refresh that arrives after a reload has
 * no cache to go to and is dropped.
 */
#ifndef DOTGW_PREFETCH_H
#define DOTGW_PREFETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dotgw/dns.h"

struct cache;
struct dnstap_queue;
struct egress_gate;
struct loop;
struct prefetch;
struct stats;
struct upstream_pool;

/* A refresh is started when at most this much, or a tenth, of an entry's lifetime is left. */
#define PREFETCH_FLOOR_MS 2000

/*
 * prefetch_due - does a hit at now_ms on an entry stored at stored_ms and fresh until
 * expire_ms call for a refresh? In its last tenth, but at least its last PREFETCH_FLOOR_MS
 * and at most its second half (a 1 s TTL is refreshed in its last 500 ms). Pure.
 */
bool prefetch_due(uint64_t stored_ms, uint64_t expire_ms, uint64_t now_ms);

/* What a refresh needs: where it goes, where its answer goes, what it asks. */
struct prefetch_req {
	struct cache *cache;	    /* the entry's cache (its mark is cleared on failure) */
	struct upstream_pool *pool; /* where the query goes... */
	uint32_t allowed;	    /* ...to these upstreams (upstream_query.allowed) */
	const struct sockaddr_storage
		*server;	     /* dnstap: the upstream it is meant for (NULL: none) */
	struct dnstap_queue *dnstap; /* NULL: no dnstap */
	struct egress_gate *egress;  /* NULL: no --egress */
	int group;		     /* the client's group, whose sets the answer refreshes */
	/* may group's clients have the answer ans (parsed into r)? (egress: its addresses) */
	bool (*admits)(void *data, int group, const uint8_t *ans, const struct dns_msg *r);
	void *data;
	uint32_t timeout_ms;
	const uint8_t *msg; /* the client's query that hit (copied) */
	size_t len;
	const struct dns_msg *m;
	uint32_t mark; /* the entry's refreshing mark (cache_lookup_refresh) */
};

/* prefetch_new - the refreshes of one worker, counted in stats. 0 or -ENOMEM. */
int prefetch_new(struct prefetch **out, struct loop *loop, struct stats *stats);
/* prefetch_free - cancel every refresh in flight (their caches are not touched). */
void prefetch_free(struct prefetch *pf);

/* prefetch_room - may one more refresh start, with max_inflight queries per worker? */
bool prefetch_room(const struct prefetch *pf, unsigned int max_inflight);

/*
 * prefetch_start - refresh the entry that answered req->m (the cache marked it): send the
 * query upstream. On failure the mark is cleared and the failure counted. 0 or -errno.
 */
int prefetch_start(struct prefetch *pf, const struct prefetch_req *req, uint64_t now_ms);

/* prefetch_reload - the caches and groups changed: answers in flight go nowhere. */
void prefetch_reload(struct prefetch *pf);

#endif
