/* test_inflight.c - per-client shares of the queries in flight: share, waiting in order,
 * refusal past the wait list, give-back, prefixes, forced counts, a full table, a share that
 * grows while answers come and halves on timeouts, and falls back to the default when growth
 * is turned off. */
#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>

#include "check.h"
#include "dotgw/inflight.h"

static int take(struct inflight *t, int family, const char *ip, struct inflight_wait *w, bool force)
{
	uint8_t a[16];

	inet_pton(family, ip, a);
	return inflight_take(t, family, a, w, force);
}

int main(void)
{
	struct inflight *t;
	struct inflight_wait run[4], wait[3], other, extra, v6[6];

	CHECK_EQ(inflight_new(&t, 0, 1, 32, 56, 1), -22);
	CHECK_EQ(inflight_new(&t, 10, 0, 32, 56, 1), -22);
	CHECK_EQ(inflight_new(&t, 10, 1, 33, 56, 1), -22);
	CHECK_EQ(inflight_new(&t, 10, 1, 32, 0, 1), -22);

	/* a share of 2: two run, two wait, the fifth is refused */
	CHECK_EQ(inflight_new(&t, 16, 2, 32, 56, 7), 0);
	CHECK(inflight_same(t, 16, 2, 32, 56));
	CHECK(!inflight_same(t, 16, 3, 32, 56));
	CHECK_EQ(take(t, AF_INET, "198.51.100.2", &run[0], false), 0);
	CHECK_EQ(take(t, AF_INET, "198.51.100.2", &run[1], false), 0);
	CHECK_EQ(run[0].slot, run[1].slot); /* one slot per client */
	CHECK_EQ(take(t, AF_INET, "198.51.100.2", &wait[0], false), 1);
	CHECK_EQ(take(t, AF_INET, "198.51.100.2", &wait[1], false), 1);
	CHECK_EQ(take(t, AF_INET, "198.51.100.2", &wait[2], false), -16);
	CHECK_EQ(take(t, AF_INET, "198.51.100.3", &other, false), 0); /* the others go on */
	CHECK(other.slot != run[0].slot);
	/* an end hands the place to the oldest waiting query */
	CHECK(inflight_put(t, &run[0]) == &wait[0]);
	CHECK_EQ(run[0].slot, -1);
	CHECK_EQ(take(t, AF_INET, "198.51.100.2", &wait[2], false), 1); /* room to wait again */
	inflight_unwait(t, &wait[1]); /* gave up: the next in line is wait[2] */
	CHECK(inflight_put(t, &run[1]) == &wait[2]);
	CHECK(inflight_put(t, &wait[0]) == NULL);
	CHECK(inflight_put(t, &wait[2]) == NULL);
	CHECK(inflight_put(t, &wait[2]) == NULL); /* twice: harmless (slot is -1 now) */
	/* the client counts nothing now: its slot is free, a new query runs at once */
	CHECK_EQ(take(t, AF_INET, "198.51.100.2", &run[2], false), 0);
	CHECK_EQ(take(t, AF_INET, "198.51.100.2", &run[3], false), 0);
	CHECK_EQ(take(t, AF_INET, "198.51.100.2", &extra, true), 0); /* forced: counted anyway */
	CHECK(inflight_put(t, &extra) == NULL);

	/* IPv6: one /56 is one client */
	CHECK_EQ(take(t, AF_INET6, "2001:db8::2", &v6[0], false), 0);
	CHECK_EQ(take(t, AF_INET6, "2001:db8:0:ff::1", &v6[1], false), 0);
	CHECK_EQ(take(t, AF_INET6, "2001:db8:0:1::9", &v6[2], false), 1);
	CHECK_EQ(take(t, AF_INET6, "2001:db8:0:100::9", &v6[3], false), 0); /* another /56 */
	inflight_free(t);
	inflight_free(NULL);

	/* growth: a share of 2 that may grow to 6 */
	CHECK_EQ(inflight_new(&t, 16, 2, 32, 56, 9), 0);
	{
		struct inflight_wait r[8];

		CHECK_EQ(take(t, AF_INET, "198.51.100.2", &r[0], false), 0);
		CHECK(!inflight_over_share(t, &r[0]));
		CHECK_EQ(take(t, AF_INET, "198.51.100.2", &r[1], false), 0);
		CHECK(!inflight_over_share(t, &r[1])); /* 2 counted: the share, not past it */
		CHECK_EQ(take(t, AF_INET, "198.51.100.2", &r[2], false), 1);
		CHECK_EQ(take(t, AF_INET, "198.51.100.2", &r[3], false), 1);
		/* no growth allowed yet: an answer changes nothing */
		inflight_answered(t, &r[0]);
		CHECK(inflight_put(t, &r[0]) == &r[2]);
		CHECK(inflight_admit(t, r[2].slot) == NULL);
		CHECK_EQ(take(t, AF_INET, "198.51.100.2", &r[0], false), 1);
		inflight_set_growth(t, 6);
		/* an answer while queries wait: share 3, so one more starts beside the hand-over */
		inflight_answered(t, &r[1]);
		{
			int slot = r[1].slot;

			CHECK(inflight_put(t, &r[1]) == &r[3]);
			CHECK(inflight_admit(t, slot) == &r[0]);
			CHECK(inflight_admit(t, slot) == NULL); /* none waits now */
		}
		/* three run (r[2], r[3], r[0]): a fourth waits... */
		CHECK_EQ(take(t, AF_INET, "198.51.100.2", &r[4], false), 1);
		/* ...until answers raise the share: at most to 6 */
		for (int i = 0; i < 10; i++)
			inflight_answered(t, &r[2]);
		CHECK(inflight_admit(t, r[2].slot) == &r[4]);
		CHECK_EQ(take(t, AF_INET, "198.51.100.2", &r[5], false), 0);
		CHECK_EQ(take(t, AF_INET, "198.51.100.2", &r[6], false), 0); /* 6 counted */
		CHECK(inflight_over_share(t, &r[6])); /* the grown part: past the default 2 */
		CHECK_EQ(take(t, AF_INET, "198.51.100.2", &r[7], false), 1); /* the 7th waits */
		/* a timeout halves it: 3; below the default it never goes */
		inflight_timed_out(t, &r[2]);
		inflight_timed_out(t, &r[3]);
		inflight_timed_out(t, &r[3]);
		CHECK(inflight_put(t, &r[2]) == &r[7]); /* a hand-over still happens */
		CHECK(inflight_admit(t, r[3].slot) == NULL);
		/* another client starts at the default share */
		CHECK_EQ(take(t, AF_INET, "198.51.100.3", &r[2], false), 0);
		CHECK_EQ(take(t, AF_INET, "198.51.100.3", &r[1], false), 0);
		CHECK_EQ(take(t, AF_INET, "198.51.100.3", &extra, false), 1);
		CHECK(!inflight_over_share(t, &r[1]));
		CHECK(!inflight_over_share(t, &extra)); /* waiting: not counted */
	}
	inflight_free(t);

	/* growth turned off (a reload): a share grown meanwhile is back at the default */
	CHECK_EQ(inflight_new(&t, 16, 2, 32, 56, 5), 0);
	inflight_set_growth(t, 6);
	{
		struct inflight_wait r[5];
		int slot;

		CHECK_EQ(take(t, AF_INET, "198.51.100.2", &r[0], false), 0);
		CHECK_EQ(take(t, AF_INET, "198.51.100.2", &r[1], false), 0);
		CHECK_EQ(take(t, AF_INET, "198.51.100.2", &r[2], false), 1);
		CHECK_EQ(take(t, AF_INET, "198.51.100.2", &r[3], false), 1);
		for (int i = 0; i < 4; i++)
			inflight_answered(t, &r[0]); /* share 6 */
		slot = r[0].slot;
		CHECK(inflight_admit(t, slot) == &r[2]);
		CHECK(inflight_admit(t, slot) == &r[3]);
		inflight_set_growth(t, 2);
		CHECK(inflight_put(t, &r[0]) == NULL);
		CHECK(inflight_put(t, &r[1]) == NULL); /* 2 counted: the share */
		CHECK_EQ(take(t, AF_INET, "198.51.100.2", &r[4], false), 1);
	}
	inflight_free(t);

	/* many clients, one query each, as many as may be in flight: nearly all are counted (a
	 * client whose probe window is full goes uncounted, not refused) */
	CHECK_EQ(inflight_new(&t, 1000, 10, 32, 56, 3), 0);
	{
		static struct inflight_wait w[1000];
		unsigned int ok = 0;

		for (unsigned int i = 0; i < 1000; i++) {
			uint8_t a[4] = {10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};

			int r = inflight_take(t, AF_INET, a, &w[i], false);

			CHECK(r == 0 || (r == -ENOSPC && w[i].slot == -1));
			ok += r == 0;
		}
		CHECK(ok >= 990);
	}
	inflight_free(t);
	return check_done("inflight");
}
