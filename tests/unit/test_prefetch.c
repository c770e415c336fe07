/*
 * test_prefetch.c - unit tests for the decision of src/prefetch.c: which cache hits refresh
 * their entry (prefetch_due), for long, 5 s and very short lifetimes; the cache's side of it
 * (cache_lookup_refresh's mark) is in test_cache.c.
 */
#include "check.h"
#include "dotgw/prefetch.h"

#define SEC 1000ull

/* due - a hit age_ms into a lifetime of life_ms, stored at an arbitrary moment */
static bool due(uint64_t life_ms, uint64_t age_ms)
{
	const uint64_t t0 = 123456789;

	return prefetch_due(t0, t0 + life_ms, t0 + age_ms);
}

/* Long TTLs: the last tenth (unbound's rule), never earlier. */
static void test_long(void)
{
	CHECK(!due(3600 * SEC, 0));
	CHECK(!due(3600 * SEC, 3240 * SEC - 1));
	CHECK(due(3600 * SEC, 3240 * SEC));
	CHECK(due(3600 * SEC, 3600 * SEC - 1));
	CHECK(!due(300 * SEC, 269 * SEC));
	CHECK(due(300 * SEC, 270 * SEC));
}

/* Between 4 s and 20 s the floor holds: the last PREFETCH_FLOOR_MS, whatever a tenth is. */
static void test_floor(void)
{
	CHECK_EQ(PREFETCH_FLOOR_MS, 2000);
	/* 5 s: refreshed from 3 s on, so hits every 0.5 s get four chances */
	CHECK(!due(5 * SEC, 0));
	CHECK(!due(5 * SEC, 2999));
	CHECK(due(5 * SEC, 3000));
	CHECK(due(5 * SEC, 4999));
	CHECK(!due(20 * SEC, 17999));
	CHECK(due(20 * SEC, 18 * SEC));
	/* 30 s: a tenth is 3 s, more than the floor */
	CHECK(!due(30 * SEC, 26999));
	CHECK(due(30 * SEC, 27 * SEC));
}

/* Very short lifetimes: only their second half, so a refresh never follows a refresh at once. */
static void test_short(void)
{
	CHECK(!due(2 * SEC, 999));
	CHECK(due(2 * SEC, 1000));
	CHECK(!due(1 * SEC, 499));
	CHECK(due(1 * SEC, 500));
	CHECK(due(1 * SEC, 999));
}

/* Never for an expired entry (that is a miss, or serve-stale's business), nor a broken one. */
static void test_edges(void)
{
	CHECK(!due(5 * SEC, 5 * SEC));
	CHECK(!due(5 * SEC, 6 * SEC));
	CHECK(!prefetch_due(1000, 1000, 1000));
	CHECK(!prefetch_due(2000, 1000, 1500));
	/* another worker's clock read before the entry was stored: age 0, not due */
	CHECK(!prefetch_due(10 * SEC, 15 * SEC, 10 * SEC - 5));
}

int main(void)
{
	test_long();
	test_floor();
	test_short();
	test_edges();
	return check_done("prefetch");
}
