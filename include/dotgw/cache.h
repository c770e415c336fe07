/*
 * cache.h - an answer cache, shared by the workers (each call takes its lock). Keyed by question
 * name (case folded), type, class, and the query's EDNS presence, DO and CD bits, so that answers
 * to different questions, classes or DNSSEC wishes never mix. TTLs count down as answers are
 * served; negative answers live as long as their SOA says (RFC 2308); memory is bounded and the
 * least recently used entries go first. Optionally serves stale entries (RFC 8767) for a
 * bounded time when no upstream can answer.
 * Pure code: the caller passes the time; nothing here does I/O or logs.
 */
#ifndef DOTGW_CACHE_H
#define DOTGW_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dotgw/dns.h"

#define CACHE_STALE_TTL 30 /* TTL of a stale answer (RFC 8767 4) */

struct cache;

struct cache_stats {
	uint64_t hits, misses, stale_hits, stored, evicted, expired;
	size_t entries;
	/* charged against max_bytes: the bucket array and the entries' malloc chunks */
	size_t bytes;
};

/*
 * cache_new - a cache of at most max_bytes of heap (its bucket array, made now, and each entry's
 * malloc chunk: a full cache takes about max_bytes, fragmentation apart), TTLs capped at
 * max_ttl seconds, expired entries kept for stale_s seconds for cache_lookup(allow_stale)
 * (0: never serve stale). seed randomises the hash. Returns 0 or -ENOMEM.
 */
int cache_new(struct cache **out, size_t max_bytes, uint32_t max_ttl, uint32_t stale_s,
	      uint32_t seed);
void cache_free(struct cache *c);

/*
 * cache_store - remember answer (len octets, parsed into r) to query q, as of now_ms.
 * Answers that are truncated, carry an rcode other than NOERROR and NXDOMAIN, have a TTL of 0,
 * or are negative without an SOA to time them are not stored. Returns 0 when stored, 1 when
 * not cacheable, -ENOMEM.
 */
int cache_store(struct cache *c, const struct dns_msg *q, const uint8_t *answer,
		const struct dns_msg *r, uint64_t now_ms);

/*
 * cache_lookup - the answer to q (with q's id, TTLs counted down to now) written to out.
 * allow_stale: also an expired entry within the stale bound, with TTLs of CACHE_STALE_TTL.
 * Returns the length, -ENOENT (no usable entry) or -ENOSPC.
 */
int cache_lookup(struct cache *c, const struct dns_msg *q, uint8_t *out, size_t outlen,
		 uint64_t now_ms, bool allow_stale);

/*
 * cache_lookup_refresh - cache_lookup without stale entries; on a hit, when refresh is not
 * NULL and the entry is near its end (prefetch_due) and not being refreshed already, marks it
 * so and sets *refresh to the mark, nonzero (else leaves it): the caller then refreshes it
 * (prefetch.h). The mark goes when a new answer replaces the entry, or by cache_refresh_end.
 */
int cache_lookup_refresh(struct cache *c, const struct dns_msg *q, uint8_t *out, size_t outlen,
			 uint64_t now_ms, uint32_t *refresh);

/*
 * cache_refresh_end - the refresh that got mark for q's entry ended without a new answer:
 * unmark the entry, if it is still the one marked so (not one stored after it, maybe marked
 * for a refresh of its own).
 */
void cache_refresh_end(struct cache *c, const struct dns_msg *q, uint32_t mark);

void cache_get_stats(const struct cache *c, struct cache_stats *st);

#endif
