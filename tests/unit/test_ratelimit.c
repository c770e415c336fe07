/* test_ratelimit.c - per-client token buckets: rate, burst, refill, prefixes, bounded table. */
#include <arpa/inet.h>
#include <sys/socket.h>

#include "check.h"
#include "dotgw/ratelimit.h"

static unsigned int allowed(struct ratelimit *rl, int family, const char *ip, unsigned int n,
			    uint64_t now)
{
	uint8_t a[16];
	unsigned int ok = 0;

	inet_pton(family, ip, a);
	for (unsigned int i = 0; i < n; i++)
		ok += ratelimit_allow(rl, family, a, now);
	return ok;
}

int main(void)
{
	struct ratelimit *rl;

	CHECK_EQ(ratelimit_new(&rl, 0, 10, 32, 56, 64, 1), -22);
	CHECK_EQ(ratelimit_new(&rl, 10, 10, 33, 56, 64, 1), -22);
	CHECK_EQ(ratelimit_new(&rl, 10, 10, 32, 129, 64, 1), -22);

	/* 100 q/s, bursts of 20 */
	CHECK_EQ(ratelimit_new(&rl, 100, 20, 32, 56, 64, 1), 0);
	CHECK_EQ(allowed(rl, AF_INET, "198.51.100.2", 50, 1000), 20); /* the burst, no more */
	CHECK_EQ(allowed(rl, AF_INET, "198.51.100.3", 50, 1000), 20); /* another client */
	CHECK_EQ(allowed(rl, AF_INET, "198.51.100.2", 50, 1100), 10); /* 100 ms refill 10 */
	CHECK_EQ(allowed(rl, AF_INET, "198.51.100.2", 50, 1105), 0);  /* half a token: no */
	CHECK_EQ(allowed(rl, AF_INET, "198.51.100.2", 50, 1110), 1);
	CHECK_EQ(allowed(rl, AF_INET, "198.51.100.2", 50, 60000), 20); /* never above the burst */
	/* IPv6: one /56 is one client */
	CHECK_EQ(allowed(rl, AF_INET6, "2001:db8:1:100::1", 15, 2000), 15);
	CHECK_EQ(allowed(rl, AF_INET6, "2001:db8:1:1ff::2", 15, 2000), 5);
	CHECK_EQ(allowed(rl, AF_INET6, "2001:db8:1:200::1", 15, 2000), 15); /* another /56 */
	/* an IPv4 address and the IPv6 address with the same first octets do not mix */
	CHECK_EQ(allowed(rl, AF_INET, "32.1.13.184", 5, 2000), 5);
	ratelimit_free(rl);

	/* A /24 for IPv4; a table of 16 slots flooded by 10000 clients stays bounded and still
	 * limits a client that keeps sending. */
	CHECK_EQ(ratelimit_new(&rl, 1, 1, 24, 64, 16, 7), 0);
	CHECK_EQ(allowed(rl, AF_INET, "192.0.2.1", 3, 5000), 1);
	CHECK_EQ(allowed(rl, AF_INET, "192.0.2.200", 3, 5000), 0); /* same /24 */
	for (unsigned int i = 0; i < 10000; i++) {
		uint8_t a[4] = {10, (uint8_t)(i >> 8), (uint8_t)i, 1};

		ratelimit_allow(rl, AF_INET, a, 5000);
	}
	ratelimit_free(rl);
	ratelimit_free(NULL);
	return check_done("ratelimit");
}
