/*
 * inflight.c - see inflight.h. Open addressing within a small probe window from the key's
 * hash. Invariants: a slot's key is valid iff its count is not 0; a count only drops through
 * inflight_put, which hands the slot's place to a waiting query first, so a slot with waiting
 * queries always counts some, and a client's slot stays its own while it counts any.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dotgw/inflight.h"

#define INFLIGHT_PROBE 16 /* slots looked at for one key */

struct inflight_slot {
	uint8_t key[17]; /* family octet, then the address cut to its prefix */
	uint32_t count;	 /* queries counted (in flight) */
	uint32_t nwait;
	uint32_t share;		      /* this client's share now (inflight_set_growth) */
	struct inflight_list waiting; /* oldest first */
};

struct inflight {
	struct inflight_slot *slots;
	size_t nslots; /* a power of two */
	unsigned int max, share, max_share, prefix4, prefix6;
	uint32_t seed;
};

int inflight_new(struct inflight **out, unsigned int max, unsigned int share, unsigned int prefix4,
		 unsigned int prefix6, uint32_t seed)
{
	struct inflight *t;
	size_t n = 64;

	if (max == 0 || share == 0 || prefix4 == 0 || prefix4 > 32 || prefix6 == 0 || prefix6 > 128)
		return -EINVAL;
	while (n < (size_t)max * 2 && n < (1u << 24))
		n *= 2;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->slots = calloc(n, sizeof(*t->slots));
	if (!t->slots) {
		free(t);
		return -ENOMEM;
	}
	/* each slot's list is set up when the slot is taken: calloc's pages stay untouched */
	t->nslots = n;
	t->max = max;
	t->share = t->max_share = share;
	t->prefix4 = prefix4;
	t->prefix6 = prefix6;
	t->seed = seed;
	*out = t;
	return 0;
}

void inflight_free(struct inflight *t)
{
	if (!t)
		return;
	free(t->slots);
	free(t);
}

void inflight_set_growth(struct inflight *t, unsigned int max_share)
{
	unsigned int was = t->max_share;

	t->max_share = max_share > t->share ? max_share : t->share;
	/* a share grown past a lowered bound is cut to it (a busy client's slot is never freed):
	 * only a reload lowers it, so a new table's slots are not walked */
	for (size_t i = 0; t->max_share < was && i < t->nslots; i++)
		if (t->slots[i].count && t->slots[i].share > t->max_share)
			t->slots[i].share = t->max_share;
}

static struct inflight_slot *inflight_slot(struct inflight *t, const struct inflight_wait *w)
{
	if (w->slot < 0 || (size_t)w->slot >= t->nslots || !t->slots[w->slot].count)
		return NULL;
	return &t->slots[w->slot];
}

void inflight_answered(struct inflight *t, const struct inflight_wait *w)
{
	struct inflight_slot *s = inflight_slot(t, w);

	if (s && s->nwait && s->share < t->max_share)
		s->share++;
}

bool inflight_over_share(const struct inflight *t, const struct inflight_wait *w)
{
	if (w->slot < 0 || (size_t)w->slot >= t->nslots)
		return false;
	return t->slots[w->slot].count > t->share; /* a free slot counts 0 */
}

void inflight_timed_out(struct inflight *t, const struct inflight_wait *w)
{
	struct inflight_slot *s = inflight_slot(t, w);

	if (s)
		s->share = s->share / 2 > t->share ? s->share / 2 : t->share;
}

struct inflight_wait *inflight_admit(struct inflight *t, int slot)
{
	struct inflight_slot *s;
	struct inflight_wait *next;

	if (slot < 0 || (size_t)slot >= t->nslots)
		return NULL;
	s = &t->slots[slot];
	next = TAILQ_FIRST(&s->waiting);
	if (!next || !s->count || s->count >= s->share)
		return NULL;
	TAILQ_REMOVE(&s->waiting, next, link);
	s->nwait--;
	s->count++;
	return next;
}

bool inflight_same(const struct inflight *t, unsigned int max, unsigned int share,
		   unsigned int prefix4, unsigned int prefix6)
{
	return t->max == max && t->share == share && t->prefix4 == prefix4 && t->prefix6 == prefix6;
}

static uint32_t inflight_hash(const struct inflight *t, const uint8_t *key)
{
	uint32_t h = 2166136261u ^ t->seed;

	for (size_t i = 0; i < sizeof(((struct inflight_slot *)0)->key); i++) {
		h ^= key[i];
		h *= 16777619u;
	}
	return h ^ (h >> 16);
}

int inflight_take(struct inflight *t, int family, const uint8_t *addr, struct inflight_wait *w,
		  bool force)
{
	uint8_t key[17] = {0};
	unsigned int bits = family == AF_INET6 ? t->prefix6 : t->prefix4;
	size_t h, free_slot = SIZE_MAX;

	key[0] = (uint8_t)family;
	memcpy(key + 1, addr, bits / 8);
	if (bits % 8)
		key[1 + bits / 8] = (uint8_t)(addr[bits / 8] & (0xff00 >> (bits % 8)));
	h = inflight_hash(t, key);
	for (size_t i = 0; i < INFLIGHT_PROBE; i++) {
		size_t k = (h + i) & (t->nslots - 1);
		struct inflight_slot *s = &t->slots[k];

		if (s->count == 0) {
			if (free_slot == SIZE_MAX)
				free_slot = k;
			continue;
		}
		if (memcmp(s->key, key, sizeof(key)) != 0)
			continue;
		if (s->count < s->share || force) {
			s->count++;
			w->slot = (int)k;
			return 0;
		}
		if (s->nwait >= s->share)
			return -EBUSY;
		w->slot = (int)k;
		TAILQ_INSERT_TAIL(&s->waiting, w, link);
		s->nwait++;
		return 1;
	}
	if (free_slot == SIZE_MAX) {
		w->slot = -1;
		return -ENOSPC;
	}
	memcpy(t->slots[free_slot].key, key, sizeof(key));
	t->slots[free_slot].count = 1;
	t->slots[free_slot].share = t->share;
	TAILQ_INIT(&t->slots[free_slot].waiting); /* empty whenever count fell to 0 */
	w->slot = (int)free_slot;
	return 0;
}

void inflight_unwait(struct inflight *t, struct inflight_wait *w)
{
	struct inflight_slot *s;

	if (w->slot < 0 || (size_t)w->slot >= t->nslots)
		return;
	s = &t->slots[w->slot];
	TAILQ_REMOVE(&s->waiting, w, link);
	s->nwait--;
	w->slot = -1;
}

struct inflight_wait *inflight_put(struct inflight *t, struct inflight_wait *w)
{
	struct inflight_slot *s;
	struct inflight_wait *next;

	if (w->slot < 0 || (size_t)w->slot >= t->nslots)
		return NULL;
	s = &t->slots[w->slot];
	w->slot = -1;
	next = TAILQ_FIRST(&s->waiting);
	if (next) {
		/* it takes w's place: the count stays */
		TAILQ_REMOVE(&s->waiting, next, link);
		s->nwait--;
		return next;
	}
	if (s->count)
		s->count--;
	return NULL;
}
