/*
 * prefetch.c - see prefetch.h. Each refresh is a struct prefetch_query holding a copy of the
 * client's query; it lives from prefetch_start until its answer is stored (and, for an
 * --egress group, its addresses are in the group's sets), or until its deadline.
 *
 * Invariants: a refresh is in pf->queries exactly while it is allocated, and pf->n counts
 * them; it is with the upstream pool (uq) until complete() or its deadline, then maybe waiting
 * for the egress gate (holding), never both; every refresh started is counted once as
 * completed (its answer stored) or failed (no answer, or one that could not be stored), and a
 * failed one unmarks its cache entry.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "dotgw/addr.h"
#include "dotgw/cache.h"
#include "dotgw/dnstap.h"
#include "dotgw/egress_gate.h"
#include "dotgw/log.h"
#include "dotgw/loop.h"
#include "dotgw/prefetch.h"
#include "dotgw/stats.h"
#include "dotgw/upstream.h"

struct prefetch_query {
	struct upstream_query uq;
	struct loop_timer deadline;
	struct egress_hold hold;
	struct prefetch *pf;
	LIST_ENTRY(prefetch_query) link;
	struct cache *cache; /* NULL: a reload took it away */
	struct upstream_pool *pool;
	struct dnstap_queue *dnstap;
	struct egress_gate *egress;
	bool (*admits)(void *data, int group, const uint8_t *ans, const struct dns_msg *r);
	void *data;
	union sockaddr_any server; /* family 0: not tapped */
	int group;		   /* -1: no sets to refresh */
	bool holding;		   /* waiting for the egress gate */
	uint32_t mark;		   /* its entry's refreshing mark */
	struct dns_msg m;
	uint16_t len;
	uint8_t msg[];
};

struct prefetch {
	struct loop *loop;
	struct stats *stats;
	LIST_HEAD(, prefetch_query) queries;
	unsigned int n;
};

bool prefetch_due(uint64_t stored_ms, uint64_t expire_ms, uint64_t now_ms)
{
	uint64_t life, window;

	if (now_ms >= expire_ms || expire_ms <= stored_ms)
		return false;
	life = expire_ms - stored_ms;
	window = life / 10;
	if (window < PREFETCH_FLOOR_MS)
		window = PREFETCH_FLOOR_MS;
	if (window > life / 2)
		window = life / 2;
	return expire_ms - now_ms <= window;
}

int prefetch_new(struct prefetch **out, struct loop *loop, struct stats *stats)
{
	struct prefetch *pf = calloc(1, sizeof(*pf));

	if (!pf)
		return -ENOMEM;
	pf->loop = loop;
	pf->stats = stats;
	LIST_INIT(&pf->queries);
	*out = pf;
	return 0;
}

/* pq_free - forget pq (it is with nobody now). */
static void pq_free(struct prefetch_query *pq)
{
	loop_timer_cancel(pq->pf->loop, &pq->deadline);
	LIST_REMOVE(pq, link);
	pq->pf->n--;
	free(pq);
}

/* pq_log - a debug line on how pq ended. */
static void pq_log(const struct prefetch_query *pq, const char *what)
{
	char name[DNS_MAX_NAME * 4 + 1];

	if (!log_enabled(LOG_LVL_DEBUG))
		return;
	if (dns_name_to_text(pq->m.q.name, pq->m.q.name_len, name, sizeof(name)) < 0)
		strcpy(name, "?");
	log_debug("prefetch %s type %u: %s", name, pq->m.q.qtype, what);
}

/* pq_fail - pq ends without a new answer: its entry may be refreshed by a later hit. */
static void pq_fail(struct prefetch_query *pq, const char *why)
{
	pq_log(pq, why);
	pq->pf->stats->prefetch_failed++;
	if (pq->cache)
		cache_refresh_end(pq->cache, &pq->m, pq->mark);
	pq_free(pq);
}

static void pq_tap(struct prefetch_query *pq, bool response, const uint8_t *msg, size_t len)
{
	if (pq->dnstap && pq->server.sa.sa_family &&
	    !dnstap_log_forward(pq->dnstap, response, DNSTAP_DOT, NULL, &pq->server.sa, msg, len))
		pq->pf->stats->dnstap_dropped++;
}

static void pq_egress_done(struct egress_hold *h, int err)
{
	(void)err; /* a refused address was logged and counted by the gate */
	pq_free(container_of(h, struct prefetch_query, hold));
}

static void pq_complete(struct upstream_query *uq, const uint8_t *answer, const struct dns_msg *r,
			int err)
{
	struct prefetch_query *pq = container_of(uq, struct prefetch_query, uq);
	struct stats *st = pq->pf->stats;

	if (err) {
		pq_fail(pq, strerror(-err));
		return;
	}
	pq_tap(pq, true, answer, r->len);
	if (!pq->cache || cache_store(pq->cache, &pq->m, answer, r, loop_now_ms(pq->pf->loop))) {
		pq_fail(pq, "answer not stored"); /* an error, TTL 0; or no memory */
		return;
	}
	pq_log(pq, "entry replaced");
	st->cache_stored++;
	st->prefetch_completed++;
	/* the answer replaced the entry: the group's sets follow it, as a hit's answer would */
	if (pq->egress && pq->group >= 0 && egress_gate_polices(pq->egress, pq->group) &&
	    pq->admits(pq->data, pq->group, answer, r)) {
		pq->hold.done = pq_egress_done;
		if (egress_gate_hold(pq->egress, pq->group, answer, r->len, &pq->hold) == 1) {
			pq->holding = true; /* the deadline still runs */
			return;
		}
	}
	pq_free(pq);
}

static void pq_deadline(struct loop_timer *t)
{
	struct prefetch_query *pq = container_of(t, struct prefetch_query, deadline);

	if (pq->holding) { /* stored already: the sets' update is late, the gate logs it */
		egress_gate_cancel(&pq->hold);
		pq_free(pq);
		return;
	}
	upstream_query_cancel(pq->pool, &pq->uq);
	pq_fail(pq, "no answer in time");
}

bool prefetch_room(const struct prefetch *pf, unsigned int max_inflight)
{
	return pf && pf->n < max_inflight / 8 + 1;
}

int prefetch_start(struct prefetch *pf, const struct prefetch_req *req, uint64_t now_ms)
{
	struct prefetch_query *pq = malloc(sizeof(*pq) + req->len);

	pf->stats->prefetch_started++;
	if (!pq) {
		pf->stats->prefetch_failed++;
		cache_refresh_end(req->cache, req->m, req->mark);
		return -ENOMEM;
	}
	memset(pq, 0, sizeof(*pq));
	pq->pf = pf;
	pq->cache = req->cache;
	pq->pool = req->pool;
	pq->dnstap = req->dnstap;
	pq->egress = req->egress;
	pq->admits = req->admits;
	pq->data = req->data;
	pq->group = req->group;
	pq->mark = req->mark;
	if (req->server)
		memcpy(&pq->server, req->server, sizeof(pq->server)); /* a prefix of it */
	pq->m = *req->m;
	pq->len = (uint16_t)req->len;
	memcpy(pq->msg, req->msg, req->len);
	LIST_INSERT_HEAD(&pf->queries, pq, link);
	pf->n++;
	loop_timer_init(&pq->deadline, pq_deadline);
	if (loop_timer_set(pf->loop, &pq->deadline, now_ms + req->timeout_ms) < 0) {
		pq_fail(pq, "no memory for its timer");
		return -ENOMEM;
	}
	pq_log(pq, "started");
	pq_tap(pq, false, pq->msg, pq->len);
	pq->uq.msg = pq->msg;
	pq->uq.len = pq->len;
	pq->uq.m = &pq->m;
	pq->uq.allowed = req->allowed;
	pq->uq.deadline_ms = now_ms + req->timeout_ms;
	pq->uq.complete = pq_complete;
	upstream_pool_submit(pq->pool, &pq->uq); /* may complete (and free) pq at once */
	return 0;
}

void prefetch_reload(struct prefetch *pf)
{
	struct prefetch_query *pq;

	if (!pf)
		return;
	LIST_FOREACH(pq, &pf->queries, link) {
		pq->cache = NULL;
		if (!pq->holding)
			pq->group = -1;
	}
}

void prefetch_free(struct prefetch *pf)
{
	if (!pf)
		return;
	while (!LIST_EMPTY(&pf->queries)) {
		struct prefetch_query *pq = LIST_FIRST(&pf->queries);

		if (pq->holding)
			egress_gate_cancel(&pq->hold);
		else
			upstream_query_cancel(pq->pool, &pq->uq);
		pq_free(pq);
	}
	free(pf);
}
