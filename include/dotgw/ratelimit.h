/*
 * ratelimit.h - per-client token buckets, keyed by source address (IPv4 and IPv6 each cut to
 * a prefix, so that one host cannot dodge the limit by hopping addresses in its /64). The
 * table has a fixed number of buckets: a new client takes the slot of the least recently seen
 * one in its small probe window, so memory is bounded whatever clients send.
 * Pure code: the caller passes the time.
 */
#ifndef DOTGW_RATELIMIT_H
#define DOTGW_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ratelimit;

/*
 * ratelimit_new - rate queries per second per client, bursts of up to burst, clients keyed
 * by the first prefix4 / prefix6 bits of their address, at most slots clients tracked.
 * Returns 0 or -EINVAL / -ENOMEM.
 */
int ratelimit_new(struct ratelimit **out, unsigned int rate, unsigned int burst,
		  unsigned int prefix4, unsigned int prefix6, size_t slots, uint32_t seed);
void ratelimit_free(struct ratelimit *rl);

/* ratelimit_allow - may this query (family AF_INET/AF_INET6, addr 4 or 16 octets) go on? */
bool ratelimit_allow(struct ratelimit *rl, int family, const uint8_t *addr, uint64_t now_ms);

#endif
