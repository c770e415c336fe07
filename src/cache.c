/*
 * cache.c - see cache.h. A chained hash table of power-of-two size over a doubly linked LRU
 * list; an entry holds its key, the answer as the upstream gave it (every EDNS option taken
 * out of its OPT RR; a negative answer's SOA TTL lowered to the entry's lifetime) and the
 * offsets of the answer's TTL fields, in one allocation.
 *
 * Invariants: bytes == table + the sum of entry_charge() over the entries; an entry is in its
 * bucket chain and in the LRU list, or freed; bytes <= max_bytes after every store. So
 * --cache-size counts what the cache holds on the heap: its bucket array, charged when made (a
 * power of two of 8-octet buckets, at most a sixteenth of max_bytes or else one bucket; none
 * below 8 octets), and each entry's whole malloc chunk, header and rounding included. Not
 * counted: struct cache (~200 octets) and the heap's fragmentation. No stored answer holds an
 * EDNS option or a nonzero extended rcode: what one client's options (COOKIE, Client Subnet,
 * NSID) brought back never reaches another client, and a cache hit is the answer as the
 * upstream would give it to a client that sent no option it answers.
 *
 * An entry's refreshing mark (--prefetch) is set by one cache_lookup_refresh at a time, under the
 * lock, and goes with the entry (a new answer for its key is a new entry) or by
 * cache_refresh_end with that mark: at most one refresh per entry is in flight, whatever the
 * worker. Marks are numbered, so a refresh that ends late never unmarks a later entry.
 *
 * Several workers may share one cache (--workers, --queues): store, lookup and stats take its
 * lock, held for the table work only (no I/O). The workers' clocks are one CLOCK_MONOTONIC read
 * at different moments, so an entry may look stored "after" the lookup's now: its age is then 0.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "dotgw/cache.h"
#include "dotgw/prefetch.h"

#define CACHE_KEY_MAX (DNS_MAX_NAME + 5)
#define CACHE_MAX_RRS 512

/* key flags */
#define CK_OPT 1u
#define CK_DO  2u
#define CK_CD  4u
#define CK_AD  8u /* RFC 6840 5.7: a validator sets AD only when the query had AD or DO */

static void soa_ttl_clamp(uint8_t *msg, const struct dns_msg *r, const uint16_t *offs,
			  uint32_t ttl);
static bool query_cacheable(const struct dns_msg *q);

SLIST_HEAD(cache_bucket, cache_entry);

struct cache_entry {
	SLIST_ENTRY(cache_entry) hlink; /* its hash bucket */
	TAILQ_ENTRY(cache_entry) lru;	/* first: the most recently used */
	uint64_t stored_ms;
	uint64_t expire_ms; /* when it stops being fresh */
	uint32_t hash;
	uint16_t keylen;
	uint16_t len;	     /* answer octets */
	uint16_t noffs;	     /* TTL offsets */
	uint32_t refreshing; /* its prefetch's mark (cache_lookup_refresh); 0: none */
	uint8_t data[];	     /* key, answer, then noffs uint16_t offsets (unaligned) */
};

struct cache {
	struct cache_bucket *buckets;
	size_t nbuckets; /* a power of two */
	size_t table;	 /* octets of buckets charged against max_bytes (0: the one in none) */
	struct cache_bucket none; /* the bucket of a cache too small for an array of one */
	TAILQ_HEAD(cache_lru, cache_entry) lru;
	size_t bytes, max_bytes, entries;
	uint32_t max_ttl, stale_s, seed;
	uint32_t marks; /* the last refreshing mark given */
	struct cache_stats st;
	pthread_mutex_t lock; /* held by store, lookup and stats: workers may share the cache */
};

static size_t cache_key(const struct dns_msg *q, uint8_t *key)
{
	size_t n = q->q.name_len;

	for (size_t i = 0; i < n; i++) {
		uint8_t ch = q->q.name[i];

		/* label lengths are < 64, never in 'A'..'Z', so folding every octet is safe */
		key[i] = ch >= 'A' && ch <= 'Z' ? (uint8_t)(ch + 32) : ch;
	}
	dns_put16(key + n, q->q.qtype);
	dns_put16(key + n + 2, q->q.qclass);
	key[n + 4] =
		(uint8_t)((q->has_opt ? CK_OPT : 0) | ((q->opt_ttl & DNS_OPT_TTL_DO) ? CK_DO : 0) |
			  ((q->flags & DNS_FLAG_CD) ? CK_CD : 0) |
			  ((q->flags & DNS_FLAG_AD) ? CK_AD : 0));
	return n + 5;
}

/*
 * query_cacheable - may q be answered from the cache, and its answer kept? A stub's query
 * (dns_query_is_stub; an RD=0 answer comes from the upstream's cache alone and is meant for
 * whoever asked it so), EDNS version 0 when it has an OPT RR (else the upstream answers
 * BADVERS, RFC 6891 6.1.3), and no option but COOKIE, padding and keepalive: Client Subnet,
 * NSID and options unknown here ask for an answer for this client, which goes upstream.
 */
static bool query_cacheable(const struct dns_msg *q)
{
	if (!dns_query_is_stub(q))
		return false;
	if (!q->has_opt)
		return true;
	return DNS_OPT_TTL_VERSION(q->opt_ttl) == 0 &&
	       !(q->opt_seen & ~(DNS_OPTS_COOKIE | DNS_OPTS_TRANSPORT));
}

/* FNV-1a, seeded: answers are keyed by what clients send, so the seed is random. */
static uint32_t cache_hash(const struct cache *c, const uint8_t *key, size_t len)
{
	uint32_t h = 2166136261u ^ c->seed;

	for (size_t i = 0; i < len; i++) {
		h ^= key[i];
		h *= 16777619u;
	}
	return h ^ (h >> 15);
}

/*
 * The octets a chunk of glibc's malloc puts before the pointer it returns: its size field.
 * The previous-size field in front of it belongs to the chunk before (its usable tail while
 * that one is in use), so malloc_usable_size() + this is the whole chunk: 16-octet rounding
 * and a 32-octet minimum included. This is what an entry takes from the heap.
 */
#define CACHE_CHUNK_HEADER sizeof(size_t)

static size_t entry_charge(struct cache_entry *e)
{
	return malloc_usable_size(e) + CACHE_CHUNK_HEADER;
}

int cache_new(struct cache **out, size_t max_bytes, uint32_t max_ttl, uint32_t stale_s,
	      uint32_t seed)
{
	struct cache *c = calloc(1, sizeof(*c));
	size_t n = 1;

	if (!c)
		return -ENOMEM;
	/*
	 * a bucket per 128 octets of max_bytes (8 each: a sixteenth of the budget): entries take
	 * 144-300 (a short answer, key and header: a 144-octet chunk), so chains stay under 1 long
	 * on average: each link is a cache miss once the table outgrows the CPU caches
	 */
	while (2 * n <= max_bytes / 128 && n < (1u << 20))
		n *= 2;
	c->nbuckets = n;
	if (max_bytes < sizeof(*c->buckets)) {
		/* no room for an array of one: nothing is ever stored (an entry is larger still) */
		c->buckets = &c->none;
	} else {
		c->buckets = calloc(n, sizeof(*c->buckets));
		if (!c->buckets) {
			free(c);
			return -ENOMEM;
		}
		c->table = n * sizeof(*c->buckets);
	}
	c->bytes = c->table;
	TAILQ_INIT(&c->lru);
	c->max_bytes = max_bytes;
	c->max_ttl = max_ttl;
	c->stale_s = stale_s;
	c->seed = seed;
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

static void entry_remove(struct cache *c, struct cache_entry *e)
{
	SLIST_REMOVE(&c->buckets[e->hash & (c->nbuckets - 1)], e, cache_entry, hlink);
	TAILQ_REMOVE(&c->lru, e, lru);
	c->bytes -= entry_charge(e);
	c->entries--;
	free(e);
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	while (!TAILQ_EMPTY(&c->lru))
		entry_remove(c, TAILQ_FIRST(&c->lru));
	if (c->buckets != &c->none)
		free(c->buckets);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static struct cache_entry *cache_find(struct cache *c, const uint8_t *key, size_t keylen,
				      uint32_t hash)
{
	struct cache_entry *e;

	SLIST_FOREACH(e, &c->buckets[hash & (c->nbuckets - 1)], hlink)
		if (e->hash == hash && e->keylen == keylen && memcmp(e->data, key, keylen) == 0)
			return e;
	return NULL;
}

/*
 * soa_ttl_clamp - lower the TTL of each SOA in the authority section of the negative answer
 * msg (parsed into r, TTL offsets offs) to ttl, the entry's lifetime: a negative answer's TTL
 * is its SOA's, and must reach 0 when it expires (RFC 2308 5), or a downstream cache taking
 * min(SOA TTL, MINIMUM) would keep it for a whole MINIMUM past our expiry.
 */
static void soa_ttl_clamp(uint8_t *msg, const struct dns_msg *r, const uint16_t *offs, uint32_t ttl)
{
	/* offs holds the answer section's RRs, then the authority's (OPT is never among them) */
	for (size_t i = r->ancount; i < (size_t)r->ancount + r->nscount; i++) {
		uint8_t *p = msg + offs[i];

		if (dns_get16(p - 4) == DNS_TYPE_SOA && dns_get32(p) > ttl)
			dns_put32(p, ttl);
	}
}

static int cache_store_locked(struct cache *c, const struct dns_msg *q, const uint8_t *answer,
			      const struct dns_msg *r, uint64_t now_ms)
{
	uint8_t key[CACHE_KEY_MAX];
	uint16_t offs[CACHE_MAX_RRS];
	struct dns_ttl_info ti;
	struct cache_entry *e, *old;
	size_t keylen, size, len;
	unsigned int rcode = r->flags & DNS_RCODE_MASK;
	uint32_t ttl, hash;

	if ((r->flags & DNS_FLAG_TC) || r->qdcount != 1 || !query_cacheable(q))
		return 1;
	/* BADVERS, BADCOOKIE...: about this query's EDNS, not about the name */
	if (r->has_opt && DNS_OPT_TTL_EXT_RCODE(r->opt_ttl) != 0)
		return 1;
	/* an OPT RR with records after it (a TSIG) cannot lose its options safely */
	if (r->has_opt && !r->opt_last)
		return 1;
	/* cache_lookup writes q's name over the answer's: they must be the same question */
	if (!dns_question_equal(&q->q, &r->q))
		return 1;
	if (rcode != DNS_RCODE_NOERROR && rcode != DNS_RCODE_NXDOMAIN)
		return 1;
	if (dns_ttl_scan(answer, r, offs, CACHE_MAX_RRS, &ti) < 0)
		return 1;
	if (ti.have_soa) {
		/*
		 * negative: NXDOMAIN or NODATA, maybe at the end of a CNAME chain (RFC 2308 2):
		 * as long as the SOA allows (RFC 2308 5), and no longer than any RR in it lives
		 */
		ttl = ti.neg_ttl < ti.min_ttl ? ti.neg_ttl : ti.min_ttl;
	} else if (rcode == DNS_RCODE_NXDOMAIN || r->ancount == 0) {
		return 1; /* negative without an SOA to time it */
	} else {
		ttl = ti.min_ttl;
	}
	if (ttl > c->max_ttl)
		ttl = c->max_ttl;
	if (ttl == 0)
		return 1;
	keylen = cache_key(q, key);
	/* the options go: the OPT RR is last, so no offset before it moves */
	len = r->has_opt ? r->len - (r->opt_len - DNS_OPT_MIN_LEN) : r->len;
	size = sizeof(*e) + keylen + len + 2 * ti.nrr;
	/* the request is less than its chunk: a first test before malloc */
	if (size > c->max_bytes - c->table)
		return 1;
	e = malloc(size);
	if (!e)
		return -ENOMEM;
	/* from here on, size is what the entry costs */
	size = entry_charge(e);
	if (size > c->max_bytes - c->table) {
		free(e);
		return 1;
	}
	hash = cache_hash(c, key, keylen);
	e->hash = hash;
	e->keylen = (uint16_t)keylen;
	e->len = (uint16_t)len;
	e->noffs = (uint16_t)ti.nrr;
	e->stored_ms = now_ms;
	e->refreshing = 0;
	e->expire_ms = now_ms + (uint64_t)ttl * 1000;
	memcpy(e->data, key, keylen);
	memcpy(e->data + keylen, answer, len);
	if (r->has_opt)
		dns_put16(e->data + keylen + r->opt_off + 9, 0); /* RDLENGTH: no options */
	if (ti.have_soa)
		soa_ttl_clamp(e->data + keylen, r, offs, ttl);
	memcpy(e->data + keylen + len, offs, 2 * ti.nrr);
	old = cache_find(c, key, keylen, hash);
	if (old)
		entry_remove(c, old);
	while (!TAILQ_EMPTY(&c->lru) && c->bytes + size > c->max_bytes) {
		entry_remove(c, TAILQ_LAST(&c->lru, cache_lru));
		c->st.evicted++;
	}
	SLIST_INSERT_HEAD(&c->buckets[hash & (c->nbuckets - 1)], e, hlink);
	TAILQ_INSERT_HEAD(&c->lru, e, lru);
	c->bytes += size;
	c->entries++;
	c->st.stored++;
	return 0;
}

static int cache_lookup_locked(struct cache *c, const struct dns_msg *q, uint8_t *out,
			       size_t outlen, uint64_t now_ms, bool allow_stale, uint32_t *refresh)
{
	uint8_t key[CACHE_KEY_MAX];
	size_t keylen = cache_key(q, key);
	struct cache_entry *e = cache_find(c, key, keylen, cache_hash(c, key, keylen));
	const uint8_t *offs;
	uint32_t elapsed;
	bool stale;

	if (!query_cacheable(q)) {
		c->st.misses++;
		return -ENOENT;
	}
	if (!e) {
		c->st.misses++;
		return -ENOENT;
	}
	stale = now_ms >= e->expire_ms;
	if (stale && (!c->stale_s || now_ms >= e->expire_ms + (uint64_t)c->stale_s * 1000)) {
		/* past any use: forget it */
		entry_remove(c, e);
		c->st.expired++;
		c->st.misses++;
		return -ENOENT;
	}
	if (stale && !allow_stale) {
		c->st.misses++;
		return -ENOENT;
	}
	if (e->len > outlen)
		return -ENOSPC;
	memcpy(out, e->data + e->keylen, e->len);
	dns_put16(out, q->id);
	/* RD is copied from the query (RFC 1035 4.1.1), and the key leaves it out */
	dns_put16(out + 2,
		  (uint16_t)((dns_get16(out + 2) & ~DNS_FLAG_RD) | (q->flags & DNS_FLAG_RD)));
	/* the asker's spelling of the name (same length: only case differs), for 0x20 clients */
	memcpy(out + DNS_HDR_LEN, q->q.name, q->q.name_len);
	/* another worker's clock may have read later than ours: age 0 then */
	elapsed = now_ms > e->stored_ms ? (uint32_t)((now_ms - e->stored_ms) / 1000) : 0;
	offs = e->data + e->keylen + e->len;
	for (size_t i = 0; i < e->noffs; i++) {
		uint16_t off;
		uint32_t ttl;

		memcpy(&off, offs + 2 * i, sizeof(off));
		ttl = dns_get32(out + off);
		if (ttl > c->max_ttl)
			ttl = c->max_ttl;
		ttl = stale ? CACHE_STALE_TTL : ttl > elapsed ? ttl - elapsed : 0;
		dns_put32(out + off, ttl);
	}
	TAILQ_REMOVE(&c->lru, e, lru);
	TAILQ_INSERT_HEAD(&c->lru, e, lru);
	if (stale)
		c->st.stale_hits++;
	else
		c->st.hits++;
	/* one refresh per entry at a time, and a fresh one only (prefetch.h) */
	if (refresh && !stale && !e->refreshing &&
	    prefetch_due(e->stored_ms, e->expire_ms, now_ms)) {
		if (++c->marks == 0)
			c->marks = 1;
		*refresh = e->refreshing = c->marks;
	}
	return e->len;
}

int cache_store(struct cache *c, const struct dns_msg *q, const uint8_t *answer,
		const struct dns_msg *r, uint64_t now_ms)
{
	int ret;

	pthread_mutex_lock(&c->lock);
	ret = cache_store_locked(c, q, answer, r, now_ms);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int cache_lookup(struct cache *c, const struct dns_msg *q, uint8_t *out, size_t outlen,
		 uint64_t now_ms, bool allow_stale)
{
	int ret;

	pthread_mutex_lock(&c->lock);
	ret = cache_lookup_locked(c, q, out, outlen, now_ms, allow_stale, NULL);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int cache_lookup_refresh(struct cache *c, const struct dns_msg *q, uint8_t *out, size_t outlen,
			 uint64_t now_ms, uint32_t *refresh)
{
	int ret;

	pthread_mutex_lock(&c->lock);
	ret = cache_lookup_locked(c, q, out, outlen, now_ms, false, refresh);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

void cache_refresh_end(struct cache *c, const struct dns_msg *q, uint32_t mark)
{
	uint8_t key[CACHE_KEY_MAX];
	size_t keylen = cache_key(q, key);
	struct cache_entry *e;

	pthread_mutex_lock(&c->lock);
	e = cache_find(c, key, keylen, cache_hash(c, key, keylen));
	if (e && e->refreshing == mark)
		e->refreshing = 0;
	pthread_mutex_unlock(&c->lock);
}

void cache_get_stats(const struct cache *c, struct cache_stats *st)
{
	pthread_mutex_t *lock = (pthread_mutex_t *)&c->lock; /* a reader locks too */

	pthread_mutex_lock(lock);
	*st = c->st;
	st->entries = c->entries;
	st->bytes = c->bytes;
	pthread_mutex_unlock(lock);
}
