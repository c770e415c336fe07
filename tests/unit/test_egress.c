/* test_egress.c - the egress mirror table: verdicts, expiry, the bound, forget, sweep. */
#include <errno.h>
#include <stdint.h>
#include <sys/socket.h>

#include "check.h"
#include "dotgw/egress.h"

static const uint8_t a1[4] = {203, 0, 113, 1}, a2[4] = {203, 0, 113, 2}, a3[4] = {203, 0, 113, 3};
static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
static const uint8_t v6b[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 2};

int main(void)
{
	const struct egress_stats *st;
	struct egress *e;

	CHECK_EQ(egress_new(&e, 0, 1), -EINVAL);
	CHECK_EQ(egress_new(&e, 1, 1), 0); /* one address per family */
	st = egress_stats(e);

	/* new, then covered while more than half the timeout is left, then refreshed */
	CHECK_EQ(egress_note(e, AF_INET, a1, 1000, 10000), EGRESS_ADD);
	CHECK_EQ(egress_note(e, AF_INET, a1, 2000, 10000), EGRESS_COVERED);
	CHECK_EQ(egress_note(e, AF_INET, a1, 6001, 10000), EGRESS_REFRESH); /* 4,999 left < 5,000 */
	CHECK_EQ(egress_note(e, AF_INET, a1, 6002, 10000), EGRESS_COVERED);
	/* a longer timeout than the element has left is a refresh even at once */
	CHECK_EQ(egress_note(e, AF_INET, a1, 6003, 100000), EGRESS_REFRESH);
	CHECK_EQ(st->adds, 1);
	CHECK_EQ(st->refreshes, 2);

	/* the family is part of the key, and each family has its own bound (as each kernel set) */
	CHECK_EQ(egress_note(e, AF_INET6, v6, 7000, 10000), EGRESS_ADD);
	CHECK_EQ(st->entries, 2);
	CHECK_EQ(egress_note(e, AF_INET, a2, 7000, 10000), EGRESS_FULL);
	CHECK_EQ(egress_note(e, AF_INET6, v6b, 7000, 10000), EGRESS_FULL);
	CHECK_EQ(st->overflows, 2);
	CHECK_EQ(st->entries, 2);

	/* expired entries count as absent; the sweep reclaims them, making room in their family */
	egress_sweep(e, 17001, 1u << 20);
	CHECK_EQ(st->entries, 1); /* v6 expired at 17,000; a1 lives until 106,003 */
	CHECK_EQ(st->expirations, 1);
	CHECK_EQ(egress_note(e, AF_INET6, v6b, 17001, 10000), EGRESS_ADD);
	CHECK_EQ(egress_note(e, AF_INET, a2, 17001, 10000), EGRESS_FULL); /* a1 still there */

	/* a refused element is forgotten, so the next answer tries again */
	egress_forget(e, AF_INET6, v6b);
	CHECK_EQ(st->entries, 1);
	CHECK_EQ(egress_note(e, AF_INET6, v6b, 17002, 10000), EGRESS_ADD);
	egress_forget(e, AF_INET, a3); /* absent: nothing happens */
	CHECK_EQ(st->entries, 2);

	/* an expired entry found on the way is reclaimed and the address added anew */
	CHECK_EQ(egress_note(e, AF_INET6, v6b, 27003, 10000), EGRESS_ADD);
	CHECK_EQ(st->expirations, 2);
	CHECK_EQ(st->entries, 2);

	egress_free(e);
	egress_free(NULL);
	return check_done("egress");
}
