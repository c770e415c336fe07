/*
 * worker.c - the worker threads. Each runs one event loop with its own upstream pool,
 * frontend and (nfqueue mode) queue, and touches no other worker's. The main thread opens
 * everything privileged for them before any thread starts, and afterwards talks to a worker
 * only through two eventfds (stop, reload) and the worker's lock.
 *
 * Several workers (either mode) share one set of answer caches (cache.c locks), owned by the
 * configuration reference they came with: a reload brings a new set, and the old one goes with
 * the old reference, once every worker has switched and drained.
 *
 * The reload handshake: the main thread leaves a new configuration reference and pool in
 * pending_ref/pending_pool under the lock and writes the reload eventfd; the worker swaps them
 * in and retires its old pool, which keeps its configuration reference until its queries have
 * drained (the reap timer frees it then). At most WORKER_RETIRED_MAX pools wait so; the lock
 * also keeps the main thread's readers (SIGUSR1, metrics) from seeing a pool being retired.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "dotgw/dnstap.h"
#include "dotgw/egress_gate.h"
#include "dotgw/frontend.h"
#include "dotgw/log.h"
#include "dotgw/loop.h"
#include "dotgw/queue.h"
#include "dotgw/snapshot.h"
#include "dotgw/stats.h"
#include "dotgw/upstream.h"
#include "dotgw/worker.h"

#define WORKER_RETIRED_MAX 8

/* A pool a reload replaced, waiting for its queries to finish. */
struct retired_pool {
	struct upstream_pool *pool;
	struct config_ref *ref;
};

/* One event loop on its own thread, with its own upstream connections. */
struct worker {
	unsigned int idx;
	pthread_t thread;
	bool started;
	struct loop *loop;
	struct loop_watch stop; /* an eventfd: the main thread asks the worker to stop */
	_Atomic bool leave;	/* ...or, written first, to leave its listener groups */
	struct upstream_pool *pool;
	struct frontend *fe;
	struct queue_source *queue;
	struct stats stats;
	struct config_ref *ref; /* what pool and frontend use */
	/* reload: the main thread leaves a new config and pool here and writes the eventfd */
	struct loop_watch reload;
	pthread_mutex_t lock;
	struct config_ref *pending_ref;
	struct upstream_pool *pending_pool;
	struct retired_pool retired[WORKER_RETIRED_MAX];
	size_t nretired;
	struct loop_timer reap;
};

struct workers {
	unsigned int n;
	struct worker w[];
};

struct config_ref *config_ref_new(void)
{
	struct config_ref *r = calloc(1, sizeof(*r));

	if (r) {
		/* calloc's pages of this large struct stay untouched where the options leave them
		 */
		config_init_zeroed(&r->cfg);
		r->cfg.pool_open = r->pool_open;
		r->refs = 1;
	}
	return r;
}

void config_ref_get(struct config_ref *r)
{
	__atomic_add_fetch(&r->refs, 1, __ATOMIC_ACQ_REL);
}

void config_ref_put(struct config_ref *r)
{
	if (r && __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		frontend_caches_free(r->cfg.shared_caches);
		free(r);
	}
}

static void worker_stop_event(struct loop_watch *w, uint32_t revents)
{
	struct worker *wk = container_of(w, struct worker, stop);
	uint64_t v;

	(void)revents;
	if (read(w->fd, &v, sizeof(v)) < 0) {
		if (errno == EAGAIN)
			return;
		log_error("worker %u: eventfd: %s", wk->idx, strerror(errno));
		v = 2; /* unknown: stop */
	}
	/* a leave request alone (v 1) keeps the worker running; with a stop too, it stops */
	if (atomic_exchange(&wk->leave, false)) {
		frontend_leave(wk->fe);
		if (v < 2)
			return;
	}
	loop_stop(wk->loop);
}

/* worker_reap - free the retired pools that have drained, with their configurations. */
static void worker_reap(struct loop_timer *t)
{
	struct worker *w = container_of(t, struct worker, reap);
	size_t n = 0;

	pthread_mutex_lock(&w->lock);
	for (size_t i = 0; i < w->nretired; i++) {
		if (upstream_pool_idle(w->retired[i].pool)) {
			upstream_pool_free(w->retired[i].pool);
			config_ref_put(w->retired[i].ref);
		} else {
			w->retired[n++] = w->retired[i];
		}
	}
	w->nretired = n;
	pthread_mutex_unlock(&w->lock);
	if (n)
		loop_timer_set(w->loop, &w->reap, loop_now_ms(w->loop) + 500);
}

/* worker_reload_event - take up the configuration and pool the main thread left. */
static void worker_reload_event(struct loop_watch *lw, uint32_t revents)
{
	struct worker *w = container_of(lw, struct worker, reload);
	struct upstream_pool *pool, *old;
	struct config_ref *ref;
	uint64_t v;

	(void)revents;
	if (read(lw->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&w->lock);
	ref = w->pending_ref;
	pool = w->pending_pool;
	w->pending_ref = NULL;
	w->pending_pool = NULL;
	if (ref) {
		old = frontend_reload(w->fe, &ref->cfg, pool);
		w->retired[w->nretired].pool = old;
		w->retired[w->nretired].ref = w->ref;
		w->nretired++;
		w->pool = pool;
		w->ref = ref;
	}
	pthread_mutex_unlock(&w->lock);
	if (ref)
		worker_reap(&w->reap);
}

/* worker_open - everything privileged a worker needs, opened in the main thread. */
static int worker_open(struct worker *w, struct config_ref *ref)
{
	const struct config *cfg = &ref->cfg;
	unsigned int flags;
	int r;

	config_ref_get(ref);
	w->ref = ref;
	r = loop_new(&w->loop);
	if (r < 0)
		return r;
	w->stop.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->stop.fd < 0)
		return -errno;
	w->stop.cb = worker_stop_event;
	r = loop_watch_add(w->loop, &w->stop, EPOLLIN);
	if (r < 0)
		return r;
	w->reload.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->reload.fd < 0)
		return -errno;
	w->reload.cb = worker_reload_event;
	r = loop_watch_add(w->loop, &w->reload, EPOLLIN);
	if (r < 0)
		return r;
	loop_timer_init(&w->reap, worker_reap);
	r = upstream_pool_new(&w->pool, w->loop, cfg, &w->stats);
	if (r < 0)
		return r;
	if (cfg->mode == MODE_TPROXY)
		/* raw sockets: answers from local addresses, and queries sent on to the asked
		 * address (--forward asked, locally served zones), which a reload may turn on */
		flags = FE_UDP_LISTEN | FE_TCP_LISTEN | FE_UDP_RAW_LOCAL;
	else
		flags = FE_UDP_RAW | (w->idx == 0 ? FE_TCP_LISTEN : 0);
	r = frontend_open(&w->fe, w->loop, cfg, w->pool, &w->stats, flags);
	if (r < 0)
		return r;
	if (cfg->mode == MODE_NFQUEUE)
		r = queue_open(&w->queue, w->loop, (uint16_t)(cfg->queue_num + w->idx),
			       !cfg->fail_closed, &w->stats, frontend_queue_packet, w->fe);
	return r;
}

/* worker_close - undo worker_open (whatever part of it ran); the counters and lock stay. */
static void worker_close(struct worker *w)
{
	queue_close(w->queue);
	frontend_close(w->fe); /* cancels its queries on whatever pool they went to */
	upstream_pool_free(w->pool);
	for (size_t i = 0; i < w->nretired; i++) {
		upstream_pool_free(w->retired[i].pool);
		config_ref_put(w->retired[i].ref);
	}
	upstream_pool_free(w->pending_pool);
	config_ref_put(w->pending_ref);
	config_ref_put(w->ref);
	if (w->stop.fd >= 0)
		close(w->stop.fd);
	if (w->reload.fd >= 0)
		close(w->reload.fd);
	loop_free(w->loop);
	w->queue = NULL;
	w->fe = NULL;
	w->pool = w->pending_pool = NULL;
	w->ref = w->pending_ref = NULL;
	w->nretired = 0;
	w->stop.fd = w->reload.fd = -1;
	w->loop = NULL;
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	int r = loop_run(w->loop);

	if (r < 0)
		log_error("worker %u: event loop: %s", w->idx, strerror(-r));
	return NULL;
}

int workers_new(struct workers **out, unsigned int n)
{
	struct workers *ws = calloc(1, sizeof(*ws) + n * sizeof(ws->w[0]));

	if (!ws)
		return -ENOMEM;
	ws->n = n;
	for (unsigned int i = 0; i < n; i++) {
		ws->w[i].idx = i;
		/* worker_close must not close fd 0 for a worker that never opened */
		ws->w[i].stop.fd = ws->w[i].reload.fd = -1;
		pthread_mutex_init(&ws->w[i].lock, NULL);
	}
	*out = ws;
	return 0;
}

unsigned int workers_count(const struct workers *ws)
{
	return ws->n;
}

/*
 * workers_share_caches - several workers share one set of caches, owned by ref (freed with
 * it): the kernel spreads one name's askers over the workers (tproxy: by a hash of addresses
 * and ports; nfqueue: UDP by a hash of the addresses, while worker 0 takes all TCP, so even
 * one client's UDP and TCP may meet two workers). Without memory each worker makes its own.
 */
static void workers_share_caches(struct workers *ws, struct config_ref *ref)
{
	if (ws->n < 2 || ref->cfg.shared_caches)
		return;
	if (frontend_caches_new(&ref->cfg.shared_caches, &ref->cfg) < 0)
		log_warn("no memory for the shared cache: each worker keeps its own");
}

int workers_open(struct workers *ws, struct config_ref *ref)
{
	workers_share_caches(ws, ref);
	for (unsigned int i = 0; i < ws->n; i++) {
		int r = worker_open(&ws->w[i], ref);

		if (r < 0) {
			if (r != -EINVAL) /* the modules log their own failures; this is the rest */
				log_error("worker %u: %s", i, strerror(-r));
			return r;
		}
	}
	return 0;
}

void workers_set_egress(struct workers *ws, struct nftset_link *link)
{
	for (unsigned int i = 0; i < ws->n; i++)
		if (ws->w[i].fe)
			frontend_set_egress(ws->w[i].fe, link);
}

/* workers_snapshot_egress - add one worker's --egress counters to s (groups of cfg). */
static void workers_snapshot_egress(const struct frontend *fe, const struct config *cfg,
				    struct stats_snapshot *s)
{
	size_t k = 0;

	for (size_t i = 0; i < cfg->groups.n_groups; i++) {
		struct egress_gate_stats g;

		if (!cfg->groups.groups[i].egress)
			continue;
		frontend_egress_stats(fe, (int)i, &g);
		snprintf(s->egress[k].group, sizeof(s->egress[k].group), "%s",
			 cfg->groups.groups[i].name);
		s->egress[k].index = (int)i;
		s->egress[k].elements += g.elements;
		s->egress[k].adds += g.adds;
		s->egress[k].refreshes += g.refreshes;
		s->egress[k].expirations += g.expirations;
		s->egress[k].overflows += g.overflows;
		s->egress[k].refused += g.refused;
		s->egress[k].held += g.held;
		for (size_t b = 0; b < EGRESS_HOLD_BUCKETS; b++)
			s->egress[k].hold[b] += g.hold[b];
		s->egress[k].hold_sum_us += g.hold_sum_us;
		s->egress[k].dropped = ~0ULL;
		k++;
	}
	s->n_egress = k;
}

void workers_set_dnstap(struct workers *ws, struct dnstap *dt)
{
	for (unsigned int i = 0; i < ws->n; i++)
		if (ws->w[i].fe)
			frontend_set_dnstap(ws->w[i].fe, dt ? dnstap_queue(dt, i) : NULL);
}

int workers_start(struct workers *ws)
{
	for (unsigned int i = 0; i < ws->n; i++) {
		int r = pthread_create(&ws->w[i].thread, NULL, worker_run, &ws->w[i]);

		if (r != 0) {
			log_error("starting worker %u: %s", i, strerror(r));
			return -r;
		}
		ws->w[i].started = true;
	}
	return 0;
}

void workers_stop(struct workers *ws)
{
	const uint64_t one = 1;

	for (unsigned int i = 0; ws && i < ws->n; i++) {
		struct worker *w = &ws->w[i];

		if (!w->started)
			continue;
		if (write(w->stop.fd, &one, sizeof(one)) < 0)
			log_error("worker %u: eventfd: %s", i, strerror(errno));
		pthread_join(w->thread, NULL);
		w->started = false;
	}
}

void workers_leave(struct workers *ws)
{
	const uint64_t one = 1;

	for (unsigned int i = 0; ws && i < ws->n; i++) {
		struct worker *w = &ws->w[i];

		if (!w->started)
			continue;
		atomic_store(&w->leave, true);
		if (write(w->stop.fd, &one, sizeof(one)) < 0)
			log_error("worker %u: eventfd: %s", i, strerror(errno));
	}
}

void workers_close(struct workers *ws)
{
	for (unsigned int i = 0; ws && i < ws->n; i++)
		worker_close(&ws->w[i]);
}

void workers_free(struct workers *ws)
{
	for (unsigned int i = 0; ws && i < ws->n; i++)
		pthread_mutex_destroy(&ws->w[i].lock);
	free(ws);
}

/*
 * workers_snapshot_ddr - add one worker's --upstream asked table to s: an address that
 * several workers know is one entry, its counters added up, its state the first worker's.
 */
static void workers_snapshot_ddr(struct ddr *d, struct stats_snapshot *s)
{
	struct ddr_snapshot one[SNAPSHOT_DDR_MAX];
	size_t n = ddr_snapshot(d, one, SNAPSHOT_DDR_MAX);

	for (size_t i = 0; i < n; i++) {
		size_t k = 0;

		while (k < s->n_ddr && strcmp(s->ddr[k].asked, one[i].asked) != 0)
			k++;
		if (k < s->n_ddr) {
			s->ddr[k].queries += one[i].queries;
			s->ddr[k].failures += one[i].failures;
		} else if (s->n_ddr < SNAPSHOT_DDR_MAX) {
			s->ddr[s->n_ddr++] = one[i];
		}
	}
}

/* workers_snapshot_forwards - the names of the --forward targets in force, for metrics. */
static void workers_snapshot_forwards(const struct forward_table *ft, struct stats_snapshot *s)
{
	static const char *const transport[] = {[FORWARD_UPSTREAM] = "dot",
						[FORWARD_PLAIN] = "unencrypted",
						[FORWARD_ASKED] = "asked"};

	s->n_fwd = ft->n_targets;
	for (size_t i = 0; i < ft->n_targets; i++) {
		snprintf(s->fwd[i].name, sizeof(s->fwd[i].name), "%s", ft->targets[i].text);
		s->fwd[i].transport = transport[ft->targets[i].kind];
	}
}

void workers_snapshot(struct workers *ws, struct stats_snapshot *s)
{
	size_t n = 0;

	memset(s, 0, sizeof(*s));
	for (unsigned int w = 0; w < ws->n; w++) {
		struct worker *wk = &ws->w[w];

		/* each counter whole, not all of them at the same instant */
#define STATS_ADD(name) stats_add(&s->sum.name, stats_get(&wk->stats.name));
		STATS_FIELDS(STATS_ADD)
#undef STATS_ADD
		for (size_t i = 0; i < STATS_FORWARD_TARGETS; i++)
			stats_add(&s->sum.forwarded[i], stats_get(&wk->stats.forwarded[i]));
		/* the workers' current pools; their lock keeps a reload from retiring one */
		pthread_mutex_lock(&wk->lock);
		if (!wk->pool || !wk->fe) { /* closed, or its open failed: the counters only */
			pthread_mutex_unlock(&wk->lock);
			continue;
		}
		s->inflight += frontend_inflight(wk->fe);
		if (w == 0) {
			n = upstream_pool_count(wk->pool);
			if (n > CONFIG_MAX_UPSTREAMS)
				n = CONFIG_MAX_UPSTREAMS;
			for (size_t i = 0; i < n; i++)
				snprintf(s->up[i].name, sizeof(s->up[i].name), "%s",
					 upstream_pool_name(wk->pool, i));
			s->n_upstreams = n;
			workers_snapshot_forwards(&wk->ref->cfg.forwards, s);
		}
		if (upstream_pool_count(wk->pool) == n)
			for (size_t i = 0; i < n; i++)
				upstream_pool_snapshot(wk->pool, i, &s->up[i].s);
		if (frontend_ddr(wk->fe))
			workers_snapshot_ddr(frontend_ddr(wk->fe), s);
		workers_snapshot_egress(wk->fe, &wk->ref->cfg, s);
		pthread_mutex_unlock(&wk->lock);
	}
}

void workers_log(struct workers *ws)
{
	if (ws->n < 2)
		return;
	for (unsigned int i = 0; i < ws->n; i++) {
		const struct stats *st = &ws->w[i].stats;

		log_info("worker %u: %llu queries (%llu UDP, %llu TCP), %llu cache hits, %llu "
			 "misses",
			 i, (unsigned long long)stats_get(&st->queries),
			 (unsigned long long)stats_get(&st->queries_udp),
			 (unsigned long long)stats_get(&st->queries_tcp),
			 (unsigned long long)stats_get(&st->cache_hits),
			 (unsigned long long)stats_get(&st->cache_misses));
	}
}

bool workers_reload_busy(struct workers *ws)
{
	bool busy = false;

	for (unsigned int i = 0; i < ws->n && !busy; i++) {
		struct worker *w = &ws->w[i];

		pthread_mutex_lock(&w->lock);
		busy = w->pending_ref || w->nretired >= WORKER_RETIRED_MAX;
		pthread_mutex_unlock(&w->lock);
	}
	return busy;
}

int workers_reload_pools(struct workers *ws, const struct config *cfg,
			 struct upstream_pool ***pools)
{
	struct upstream_pool **p = calloc(ws->n, sizeof(*p));
	int r;

	if (!p)
		return -ENOMEM;
	for (unsigned int i = 0; i < ws->n; i++) {
		r = upstream_pool_new(&p[i], ws->w[i].loop, cfg, &ws->w[i].stats);
		if (r < 0) {
			workers_reload_abort(ws, p);
			return r;
		}
	}
	*pools = p;
	return 0;
}

void workers_reload_abort(struct workers *ws, struct upstream_pool **pools)
{
	for (unsigned int i = 0; pools && i < ws->n; i++)
		upstream_pool_free(pools[i]);
	free(pools);
}

void workers_reload_commit(struct workers *ws, struct config_ref *ref, struct upstream_pool **pools)
{
	const uint64_t one = 1;

	workers_share_caches(ws, ref);
	for (unsigned int i = 0; i < ws->n; i++) {
		struct worker *w = &ws->w[i];

		config_ref_get(ref);
		pthread_mutex_lock(&w->lock);
		w->pending_ref = ref;
		w->pending_pool = pools[i];
		pthread_mutex_unlock(&w->lock);
		if (write(w->reload.fd, &one, sizeof(one)) < 0)
			log_error("worker %u: eventfd: %s", i, strerror(errno));
	}
	free(pools);
}
