/*
 * egress.c - see egress.h. A chained hash table whose bucket array is sized for max entries
 * up front (calloc: pages are touched only as buckets fill); entries are allocated one by one.
 * egress_sweep walks the buckets with a cursor, so reclaiming costs a bounded amount per call.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "dotgw/egress.h"
#include "dotgw/stats.h"

struct egress_entry {
	SLIST_ENTRY(egress_entry) link;
	uint64_t expires_ms;
	uint8_t key[17]; /* family octet, then 4 or 16 address octets (the rest 0) */
};

SLIST_HEAD(egress_bucket, egress_entry);

struct egress {
	struct egress_bucket *buckets;
	size_t nbuckets; /* a power of two */
	size_t max, cursor;
	size_t per_family[2]; /* entries of IPv4, IPv6: each bounded by max, as each kernel set */
	uint32_t seed;
	struct egress_stats stats;
};

int egress_new(struct egress **out, size_t max, uint32_t seed)
{
	struct egress *e;
	size_t n = 16;

	if (max == 0)
		return -EINVAL;
	while (n < max && n < ((size_t)1 << 24))
		n *= 2;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->buckets = calloc(n, sizeof(*e->buckets)); /* SLIST_INIT is all zeros */
	if (!e->buckets) {
		free(e);
		return -ENOMEM;
	}
	e->nbuckets = n;
	e->max = max;
	e->seed = seed;
	*out = e;
	return 0;
}

void egress_free(struct egress *e)
{
	struct egress_entry *x;

	if (!e)
		return;
	for (size_t i = 0; i < e->nbuckets; i++)
		while ((x = SLIST_FIRST(&e->buckets[i]))) {
			SLIST_REMOVE_HEAD(&e->buckets[i], link);
			free(x);
		}
	free(e->buckets);
	free(e);
}

const struct egress_stats *egress_stats(const struct egress *e)
{
	return &e->stats;
}

static void egress_key(uint8_t key[17], int family, const uint8_t *addr)
{
	memset(key, 0, 17);
	key[0] = (uint8_t)family;
	memcpy(key + 1, addr, family == AF_INET6 ? 16 : 4);
}

static struct egress_bucket *egress_bucket(struct egress *e, const uint8_t key[17])
{
	uint32_t h = 2166136261u ^ e->seed;

	for (size_t i = 0; i < 17; i++) {
		h ^= key[i];
		h *= 16777619u;
	}
	return &e->buckets[(h ^ (h >> 15)) & (e->nbuckets - 1)];
}

static void egress_drop(struct egress *e, struct egress_bucket *b, struct egress_entry *x)
{
	SLIST_REMOVE(b, x, egress_entry, link);
	e->per_family[x->key[0] == AF_INET6]--;
	free(x);
	stats_add(&e->stats.entries, (uint64_t)-1);
}

/* egress_reap - drop b's expired entries; find the one of key among the rest. */
static struct egress_entry *egress_reap(struct egress *e, struct egress_bucket *b,
					const uint8_t *key, uint64_t now_ms)
{
	struct egress_entry *x, *next, *found = NULL;

	for (x = SLIST_FIRST(b); x; x = next) {
		next = SLIST_NEXT(x, link);
		if (x->expires_ms <= now_ms) {
			stats_add(&e->stats.expirations, 1);
			egress_drop(e, b, x);
		} else if (key && memcmp(x->key, key, sizeof(x->key)) == 0) {
			found = x;
		}
	}
	return found;
}

enum egress_verdict egress_note(struct egress *e, int family, const uint8_t *addr, uint64_t now_ms,
				uint64_t timeout_ms)
{
	uint8_t key[17];
	struct egress_bucket *b;
	struct egress_entry *x;
	uint64_t expires = now_ms + timeout_ms;

	egress_key(key, family, addr);
	b = egress_bucket(e, key);
	x = egress_reap(e, b, key, now_ms);
	if (x) {
		/* the element outlives half the new timeout: good enough, no kernel round trip */
		if (x->expires_ms >= now_ms + timeout_ms / 2)
			return EGRESS_COVERED;
		x->expires_ms = expires;
		stats_add(&e->stats.refreshes, 1);
		return EGRESS_REFRESH;
	}
	if (e->per_family[family == AF_INET6] >= e->max) {
		stats_add(&e->stats.overflows, 1);
		return EGRESS_FULL;
	}
	x = malloc(sizeof(*x));
	if (!x) {
		stats_add(&e->stats.overflows, 1);
		return EGRESS_FULL;
	}
	memcpy(x->key, key, sizeof(key));
	x->expires_ms = expires;
	SLIST_INSERT_HEAD(b, x, link);
	e->per_family[family == AF_INET6]++;
	stats_add(&e->stats.entries, 1);
	stats_add(&e->stats.adds, 1);
	return EGRESS_ADD;
}

void egress_forget(struct egress *e, int family, const uint8_t *addr)
{
	uint8_t key[17];
	struct egress_bucket *b;
	struct egress_entry *x;

	egress_key(key, family, addr);
	b = egress_bucket(e, key);
	SLIST_FOREACH(x, b, link)
		if (memcmp(x->key, key, sizeof(key)) == 0) {
			egress_drop(e, b, x);
			return;
		}
}

void egress_sweep(struct egress *e, uint64_t now_ms, size_t budget)
{
	for (size_t i = 0; i < budget && i < e->nbuckets; i++) {
		egress_reap(e, &e->buckets[e->cursor], NULL, now_ms);
		e->cursor = (e->cursor + 1) & (e->nbuckets - 1);
	}
}
