/*
 * test_unreachable.c - the state of --unreachable plaintext over timelines of failures,
 * answers and checks (unreachable.h), and its metrics lines. The probe and the plaintext path
 * run against real servers in tests/netns/unreachable.test.sh.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dotgw/unreachable.h"

#define AFTER 10000 /* --unreachable-after 10 */

static void fresh_start(void)
{
	struct unreachable u;

	memset(&u, 0, sizeof(u));
	/* no query ever failed: never plaintext, however long it stays quiet */
	CHECK(!unreachable_check(&u, AFTER, 1));
	CHECK(!unreachable_check(&u, AFTER, 1000000));
	CHECK(!unreachable_plaintext(&u));
	/* answers while reachable change nothing */
	CHECK(!unreachable_answered(&u, 5000, "up"));
	CHECK(!unreachable_check(&u, AFTER, 10000000));
	CHECK_EQ(u.episodes, 0);
}

static void episode(void)
{
	struct unreachable u;
	uint64_t t = 1000000;

	memset(&u, 0, sizeof(u));
	/* an answer long ago does not make the first failure plaintext at once */
	CHECK(!unreachable_answered(&u, 1000, "up"));
	unreachable_failed(&u, t);
	CHECK(!unreachable_check(&u, AFTER, t));
	CHECK(!unreachable_check(&u, AFTER, t + AFTER - 1));
	CHECK(!unreachable_plaintext(&u));
	/* later failures keep the first one's time */
	unreachable_failed(&u, t + 5000);
	CHECK(!unreachable_check(&u, AFTER, t + AFTER - 1));
	/* AFTER since the first failure with no answer: plaintext, one episode */
	CHECK(unreachable_check(&u, AFTER, t + AFTER));
	CHECK(unreachable_plaintext(&u));
	CHECK_EQ(u.episodes, 1);
	unreachable_count_pass(&u);
	CHECK(unreachable_check(&u, AFTER, t + AFTER + 1));
	unreachable_count_pass(&u);
	CHECK_EQ(u.episodes, 1);
	CHECK_EQ(u.passed, 2);
	/* failures meanwhile (the probe's) change nothing */
	unreachable_failed(&u, t + AFTER + 2);
	CHECK(unreachable_check(&u, AFTER, t + AFTER + 3));
	/* an answer ends it at once, and only once */
	CHECK(unreachable_answered(&u, t + AFTER + 500, "up"));
	CHECK(!unreachable_plaintext(&u));
	CHECK(!unreachable_check(&u, AFTER, t + AFTER + 501));
	CHECK(!unreachable_answered(&u, t + AFTER + 502, "up"));
	/* a new failure starts the clock afresh: a second episode after AFTER more */
	t += 100000;
	unreachable_failed(&u, t);
	CHECK(!unreachable_check(&u, AFTER, t + AFTER - 1));
	CHECK(unreachable_check(&u, AFTER, t + AFTER));
	CHECK_EQ(u.episodes, 2);
	CHECK_EQ(u.passed, 2);
}

static void answer_while_failing(void)
{
	struct unreachable u;
	uint64_t t = 50000;

	memset(&u, 0, sizeof(u));
	unreachable_failed(&u, t);
	/* an answer before the time is up: reachable; no episode, nothing logged as ended */
	CHECK(!unreachable_answered(&u, t + 3000, NULL));
	CHECK(!unreachable_check(&u, AFTER, t + AFTER));
	CHECK(!unreachable_check(&u, AFTER, t + 10 * AFTER));
	CHECK_EQ(u.episodes, 0);
	/* the next failure is the new start */
	unreachable_failed(&u, t + 20 * AFTER);
	CHECK(!unreachable_check(&u, AFTER, t + 21 * AFTER - 1));
	CHECK(unreachable_check(&u, AFTER, t + 21 * AFTER));
	/* a clock that reads earlier than the failure (never expected) is not "after" */
	memset(&u, 0, sizeof(u));
	unreachable_failed(&u, t);
	CHECK(!unreachable_check(&u, AFTER, t - 1));
	/* time 0 is still a failure */
	memset(&u, 0, sizeof(u));
	unreachable_failed(&u, 0);
	CHECK(unreachable_check(&u, AFTER, AFTER + 1));
}

static void metrics(void)
{
	struct unreachable u;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	memset(&u, 0, sizeof(u));
	unreachable_failed(&u, 1);
	CHECK(unreachable_check(&u, 1000, 1001));
	unreachable_count_pass(&u);
	unreachable_count_pass(&u);
	unreachable_count_pass(&u);
	f = open_memstream(&buf, &len);
	CHECK(f != NULL);
	if (!f)
		return;
	unreachable_render(&u, f);
	fclose(f);
	CHECK(strstr(buf, "\ndotgw_unreachable_plaintext 1\n") != NULL);
	CHECK(strstr(buf, "\ndotgw_unreachable_plaintext_queries_total 3\n") != NULL);
	CHECK(strstr(buf, "\ndotgw_unreachable_episodes_total 1\n") != NULL);
	CHECK(strstr(buf, "# TYPE dotgw_unreachable_plaintext gauge\n") != NULL);
	free(buf);
	CHECK(unreachable_answered(&u, 2000, "up"));
	buf = NULL;
	f = open_memstream(&buf, &len);
	if (!f)
		return;
	unreachable_render(&u, f);
	fclose(f);
	CHECK(strstr(buf, "\ndotgw_unreachable_plaintext 0\n") != NULL);
	free(buf);
}

static void resumed(void)
{
	struct unreachable u;
	struct unreachable_probe a, b;

	memset(&u, 0, sizeof(u));
	CHECK_EQ(unreachable_probe_init(&a, NULL, NULL, &u), 0);
	CHECK(!unreachable_probe_resumed(&a));
	unreachable_failed(&u, 1);
	CHECK(unreachable_check(&u, 1000, 1001));
	CHECK(!unreachable_probe_resumed(&a));
	/* a worker that starts during an episode sees only the ends after its start */
	CHECK_EQ(unreachable_probe_init(&b, NULL, NULL, &u), 0);
	CHECK(unreachable_answered(&u, 1500, "up"));
	/* every worker learns of the end once */
	CHECK(unreachable_probe_resumed(&a));
	CHECK(!unreachable_probe_resumed(&a));
	CHECK(unreachable_probe_resumed(&b));
	CHECK(!unreachable_probe_resumed(&b));
	/* an answer that ended nothing is no news */
	CHECK(!unreachable_answered(&u, 1600, "up"));
	CHECK(!unreachable_probe_resumed(&a));
	unreachable_probe_stop(&a); /* no loop: nothing to cancel */
}

int main(void)
{
	fresh_start();
	episode();
	answer_while_failing();
	metrics();
	resumed();
	return check_done("unreachable");
}
