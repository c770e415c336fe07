/*
 * test_handover.c - the table comment that marks a run's generation and slot: what parses as
 * dotgw's, and what does not (another program's comment, a slot beyond 1, trailing text).
 */
#include <stdint.h>

#include "check.h"
#include "dotgw/handover.h"

int main(void)
{
	unsigned int slot = 7;
	uint64_t gen = 0;

	CHECK(handover_comment_parse("dotgw generation=39962377331 slot=1", &gen, &slot));
	CHECK_EQ(gen, 39962377331ull);
	CHECK_EQ(slot, 1);
	CHECK(handover_comment_parse("dotgw generation=1 slot=0", &gen, &slot));
	CHECK_EQ(gen, 1);
	CHECK_EQ(slot, 0);
	CHECK(!handover_comment_parse("dotgw generation=1 slot=2", &gen, &slot));
	CHECK(!handover_comment_parse("dotgw generation=1 slot=0 x", &gen, &slot));
	CHECK(!handover_comment_parse("dotgw generation=1", &gen, &slot));
	CHECK(!handover_comment_parse("managed by firewalld", &gen, &slot));
	CHECK(!handover_comment_parse("", &gen, &slot));
	CHECK_EQ(gen, 1); /* outputs untouched on failure */
	CHECK_EQ(slot, 0);
	return check_done("handover");
}
