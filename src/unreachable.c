/*
 * unreachable.c - the state of --unreachable plaintext and each worker's probe; see
 * unreachable.h for the states and when they change.
 *
 * Invariants:
 * - Every transition is one compare-and-swap or exchange on u->state, so of two workers that
 *   see the same change only one logs it and counts it.
 * - The hot paths read before they write: an answer while REACHABLE, or a failure while
 *   FAILING, is one relaxed load of a line no one writes.
 * - A probe is in flight exactly while p->sent_to is set; it is cancelled before the probe
 *   stops, and a pool holding it is not idle, so it is not freed under it.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "dotgw/log.h"
#include "dotgw/unreachable.h"

struct unreachable unreachable_process;

/* ". NS IN", id 0 (the pool gives it its own), RD clear */
static const uint8_t probe_query[17] = {0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1};

void unreachable_failed(struct unreachable *u, uint64_t now_ms)
{
	uint64_t zero = 0;

	if (atomic_load_explicit(&u->state, memory_order_relaxed) != 0)
		return; /* already FAILING (or PLAINTEXT): the first failure counts */
	atomic_compare_exchange_strong(&u->state, &zero, now_ms ? now_ms : 1);
}

bool unreachable_answered(struct unreachable *u, uint64_t now_ms, const char *by)
{
	uint64_t old, since;

	if (atomic_load_explicit(&u->state, memory_order_relaxed) == 0)
		return false;
	old = atomic_exchange(&u->state, 0);
	if (!(old & UNREACHABLE_PLAINTEXT))
		return false;
	atomic_fetch_add(&u->ends, 1);
	since = atomic_load(&u->since_ms);
	log_warn("unreachable: upstream %s answered: queries are encrypted again, after %" PRIu64
		 " ms in which %" PRIu64 " queries went UNENCRYPTED to the address asked",
		 by ? by : "-", now_ms > since ? now_ms - since : 0,
		 atomic_load(&u->passed) - atomic_load(&u->passed_at_start));
	return true;
}

bool unreachable_check(struct unreachable *u, uint64_t after_ms, uint64_t now_ms)
{
	uint64_t s = atomic_load_explicit(&u->state, memory_order_relaxed), t;

	if (s == 0)
		return false;
	if (s & UNREACHABLE_PLAINTEXT)
		return true;
	t = s;
	if (now_ms < t || now_ms - t < after_ms)
		return false;
	if (!atomic_compare_exchange_strong(&u->state, &s, t | UNREACHABLE_PLAINTEXT))
		return (s & UNREACHABLE_PLAINTEXT) != 0; /* another worker started it, or an
							  * answer ended it */
	atomic_store(&u->since_ms, now_ms);
	atomic_store(&u->passed_at_start, atomic_load(&u->passed));
	atomic_fetch_add(&u->episodes, 1);
	log_warn("unreachable: no upstream has answered for %" PRIu64
		 " ms since a query first failed for want of one (--unreachable-after %" PRIu64
		 " s): captured queries now go UNENCRYPTED to the address each client asked, "
		 "until an upstream answers (--unreachable plaintext)",
		 now_ms - t, after_ms / 1000);
	return true;
}

bool unreachable_plaintext(const struct unreachable *u)
{
	return (atomic_load_explicit(&u->state, memory_order_relaxed) & UNREACHABLE_PLAINTEXT) != 0;
}

void unreachable_count_pass(struct unreachable *u)
{
	atomic_fetch_add_explicit(&u->passed, 1, memory_order_relaxed);
}

void unreachable_render(const struct unreachable *u, FILE *out)
{
	fprintf(out,
		"# HELP dotgw_unreachable_plaintext 1 while no upstream answers and queries pass "
		"unencrypted to the address asked (--unreachable plaintext)\n"
		"# TYPE dotgw_unreachable_plaintext gauge\n"
		"dotgw_unreachable_plaintext %d\n"
		"# HELP dotgw_unreachable_plaintext_queries_total queries passed unencrypted to "
		"the "
		"address asked because no upstream answered\n"
		"# TYPE dotgw_unreachable_plaintext_queries_total counter\n"
		"dotgw_unreachable_plaintext_queries_total %" PRIu64 "\n"
		"# HELP dotgw_unreachable_episodes_total times queries began to pass unencrypted "
		"because no upstream answered\n"
		"# TYPE dotgw_unreachable_episodes_total counter\n"
		"dotgw_unreachable_episodes_total %" PRIu64 "\n",
		unreachable_plaintext(u) ? 1 : 0,
		atomic_load_explicit(&u->passed, memory_order_relaxed),
		atomic_load_explicit(&u->episodes, memory_order_relaxed));
}

/* --- a worker's probe ----------------------------------------------------------------- */

static void probe_complete(struct upstream_query *uq, const uint8_t *answer,
			   const struct dns_msg *r, int err)
{
	struct unreachable_probe *p = container_of(uq, struct unreachable_probe, uq);

	(void)answer;
	(void)r;
	p->sent_to = NULL;
	if (err) {
		log_debug("unreachable: probe: %s", strerror(-err));
		return;
	}
	unreachable_answered(p->u, loop_now_ms(p->loop), uq->answered_by);
}

/* probe_send - one probe through the current pool. */
static void probe_send(struct unreachable_probe *p, uint64_t now)
{
	memset(&p->uq, 0, sizeof(p->uq));
	p->uq.msg = p->msg;
	p->uq.len = sizeof(p->msg);
	p->uq.m = &p->m;
	p->uq.deadline_ms = now + p->timeout_ms;
	p->uq.allowed = p->allowed;
	p->uq.complete = probe_complete;
	p->sent_ms = now;
	p->sent_to = *p->pool;
	upstream_pool_submit(p->sent_to, &p->uq); /* may complete at once */
}

static void probe_tick(struct loop_timer *t)
{
	struct unreachable_probe *p = container_of(t, struct unreachable_probe, timer);
	uint64_t now = loop_now_ms(p->loop);

	if (p->sent_to && now >= p->sent_ms + p->timeout_ms) {
		upstream_query_cancel(p->sent_to,
				      &p->uq); /* the pool sets no deadline of its own */
		p->sent_to = NULL;
	}
	if (!unreachable_plaintext(p->u)) {
		/* over: no more probes; the one in flight keeps its timeout (a kick may then find
		 * the timer armed: the next tick sends) */
		if (p->sent_to)
			loop_timer_set(p->loop, &p->timer, p->sent_ms + p->timeout_ms);
		return;
	}
	if (!p->sent_to)
		probe_send(p, now);
	loop_timer_set(p->loop, &p->timer, now + UNREACHABLE_PROBE_MS);
}

int unreachable_probe_init(struct unreachable_probe *p, struct loop *loop,
			   struct upstream_pool *const *pool, struct unreachable *u)
{
	memset(p, 0, sizeof(*p));
	p->loop = loop;
	p->pool = pool;
	p->u = u;
	loop_timer_init(&p->timer, probe_tick);
	p->ends_seen = atomic_load(&u->ends);
	memcpy(p->msg, probe_query, sizeof(p->msg));
	return dns_msg_parse(&p->m, p->msg, sizeof(p->msg)) < 0 ? -EINVAL : 0;
}

void unreachable_probe_kick(struct unreachable_probe *p, uint32_t allowed, uint64_t timeout_ms)
{
	p->allowed = allowed;
	p->timeout_ms = timeout_ms;
	if (loop_timer_armed(&p->timer))
		return; /* the tick sends the next one */
	if (loop_timer_set(p->loop, &p->timer, loop_now_ms(p->loop) + UNREACHABLE_PROBE_MS) < 0)
		return; /* no memory for the timer: the next kick tries again */
	if (!p->sent_to)
		probe_send(p, loop_now_ms(p->loop));
}

bool unreachable_probe_resumed(struct unreachable_probe *p)
{
	uint64_t ends = atomic_load_explicit(&p->u->ends, memory_order_relaxed);

	if (ends == p->ends_seen)
		return false;
	p->ends_seen = ends;
	return true;
}

void unreachable_probe_stop(struct unreachable_probe *p)
{
	if (!p->loop)
		return;
	loop_timer_cancel(p->loop, &p->timer);
	if (p->sent_to)
		upstream_query_cancel(p->sent_to, &p->uq);
	p->sent_to = NULL;
}
