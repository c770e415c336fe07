/*
 * ratelimit.c - see ratelimit.h. Tokens are kept in thousandths so that rates below one per
 * millisecond refill smoothly. Invariant: a slot's key is valid iff its last_ms != 0.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dotgw/ratelimit.h"

#define RL_PROBE 8 /* slots looked at for one key */

struct rl_slot {
	uint8_t key[17]; /* family octet, then the address cut to its prefix */
	uint64_t last_ms;
	uint64_t tokens; /* thousandths of a query */
};

struct ratelimit {
	struct rl_slot *slots;
	size_t nslots; /* a power of two */
	uint64_t rate, burst;
	unsigned int prefix4, prefix6;
	uint32_t seed;
};

int ratelimit_new(struct ratelimit **out, unsigned int rate, unsigned int burst,
		  unsigned int prefix4, unsigned int prefix6, size_t slots, uint32_t seed)
{
	struct ratelimit *rl;
	size_t n = 16;

	if (rate == 0 || burst == 0 || prefix4 == 0 || prefix4 > 32 || prefix6 == 0 ||
	    prefix6 > 128)
		return -EINVAL;
	while (n < slots && n < (1u << 24))
		n *= 2;
	rl = calloc(1, sizeof(*rl));
	if (!rl)
		return -ENOMEM;
	rl->slots = calloc(n, sizeof(*rl->slots));
	if (!rl->slots) {
		free(rl);
		return -ENOMEM;
	}
	rl->nslots = n;
	rl->rate = rate;
	rl->burst = burst;
	rl->prefix4 = prefix4;
	rl->prefix6 = prefix6;
	rl->seed = seed;
	*out = rl;
	return 0;
}

void ratelimit_free(struct ratelimit *rl)
{
	if (!rl)
		return;
	free(rl->slots);
	free(rl);
}

static uint32_t rl_hash(const struct ratelimit *rl, const uint8_t *key)
{
	uint32_t h = 2166136261u ^ rl->seed;

	for (size_t i = 0; i < sizeof(((struct rl_slot *)0)->key); i++) {
		h ^= key[i];
		h *= 16777619u;
	}
	return h ^ (h >> 16);
}

bool ratelimit_allow(struct ratelimit *rl, int family, const uint8_t *addr, uint64_t now_ms)
{
	uint8_t key[17] = {0};
	unsigned int bits = family == AF_INET6 ? rl->prefix6 : rl->prefix4;
	struct rl_slot *s = NULL, *oldest = NULL;
	uint64_t cap = rl->burst * 1000;
	size_t h;

	key[0] = (uint8_t)family;
	memcpy(key + 1, addr, bits / 8);
	if (bits % 8)
		key[1 + bits / 8] = (uint8_t)(addr[bits / 8] & (0xff00 >> (bits % 8)));
	if (now_ms == 0)
		now_ms = 1; /* 0 marks a free slot */
	h = rl_hash(rl, key);
	for (size_t i = 0; i < RL_PROBE; i++) {
		struct rl_slot *t = &rl->slots[(h + i) & (rl->nslots - 1)];

		if (t->last_ms && memcmp(t->key, key, sizeof(key)) == 0) {
			s = t;
			break;
		}
		if (!oldest || t->last_ms < oldest->last_ms)
			oldest = t;
	}
	if (!s) {
		/* a new client, in a free slot or in the least recently seen one's */
		s = oldest;
		memcpy(s->key, key, sizeof(key));
		s->tokens = cap;
		s->last_ms = now_ms;
	} else if (now_ms > s->last_ms) {
		s->tokens += (now_ms - s->last_ms) * rl->rate; /* rate/s = rate thousandths/ms */
		if (s->tokens > cap)
			s->tokens = cap;
		s->last_ms = now_ms;
	}
	if (s->tokens < 1000)
		return false;
	s->tokens -= 1000;
	return true;
}
