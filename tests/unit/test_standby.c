/*
 * test_standby.c - standby.h's policy: a standby connection only within the window after the
 * last query, only when none is open, at most one per STANDBY_GAP_MS, never with --standby 0.
 * The connections themselves are tests/netns/standby.test.sh's.
 */
#include "check.h"
#include "dotgw/standby.h"

int main(void)
{
	uint64_t t = 100000;

	/* the last query 3 s ago, a 10 s window, nothing open, no standby yet */
	CHECK(standby_due(t, t - 3000, 0, 10, 0));
	/* off; never a query; a connection still open */
	CHECK(!standby_due(t, t - 3000, 0, 0, 0));
	CHECK(!standby_due(t, 0, 0, 10, 0));
	CHECK(!standby_due(t, t - 3000, 0, 10, 1));
	/* the window ends 10 s after the last query */
	CHECK(standby_due(t, t - 9999, 0, 10, 0));
	CHECK(!standby_due(t, t - 10000, 0, 10, 0));
	/* one per STANDBY_GAP_MS at most: a server that closes at once costs one a second */
	CHECK(!standby_due(t, t - 3000, t - STANDBY_GAP_MS + 1, 10, 0));
	CHECK(standby_due(t, t - 3000, t - STANDBY_GAP_MS, 10, 0));
	/* a clock that went backwards (no query is in the future): no */
	CHECK(!standby_due(t, t + 5, 0, 10, 0));
	/* the longest window does not overflow */
	CHECK(standby_due(t + 3599999, t, 0, 3600, 0));
	CHECK(!standby_due(t + 3600000, t, 0, 3600, 0));
	return check_done("standby");
}
