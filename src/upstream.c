/*
 * upstream.c - DoT connection pools to the upstreams; see upstream.h for the contract.
 *
 * Invariants:
 * - A query is in exactly one place: a connection slot (uq->conn set), the pool's wait list
 *   (uq->waiting set), or nowhere (completed or cancelled).
 * - Bytes reach a connection's output buffer only after its slot is taken; they reach the wire
 *   only once the transport's handshake (and so authentication) has succeeded.
 * - conn_close() detaches every query before it calls anything that could complete one, so
 *   callbacks never see a half-closed connection; it alone sends the wait list on after a
 *   close (its callers do not).
 * - Each connection has one timer: the connect/handshake deadline while it opens; then the
 *   stall check while queries are in flight, or the idle deadline while none are.
 * - Queries queued on a ready connection go out from its deferred flush, once per loop
 *   iteration: all the queries of one batch of client packets share a TLS record and a write.
 * The bytes travel over a struct upstream_transport: doh.c in the daemon (tls.c for DoT, HTTP/2
 * over it for DoH upstreams and DoH fallbacks, DoT-framed either way), so that this file holds
 * no OpenSSL or nghttp2 call; ids, slots, the wait list, upstream choice and back-off are here.
 * DoH fallback: a DoT upstream whose 853 connection fails before it is ready (not on
 * authentication) switches to its fallback (doh_fb) without backing off; a connection to 853
 * is tried again at most every --doh-reprobe seconds after the last try ended, and its success
 * moves the upstream back; that re-probe carries no query (it may time out), they go over DoH.
 * A DoH request that fails at the HTTP level (status, body) comes back as a SERVFAIL the
 * transport flags (its failed()); such a query is sent once more, to another usable upstream,
 * within its deadline (conn_resend_error), else the SERVFAIL stands.
 *
 * A query whose client was answered at its deadline may stay in its slot, abandoned
 * (upstream_query_abandon), until its late answer or the connection's close: the upstream
 * still works on it, so it counts in the window, and its late RTT stays out of the estimates.
 * The in-flight window: a connection carries at most conn_window() queries; the rest wait in
 * the pool's list. The window follows the connection's measured bandwidth-delay product:
 *   window = clamp(UPCONN_WIN_GAIN (2) x rate x min_rtt, --conn-inflight, UPCONN_WIN_MAX)
 * rate is the answers per second over samples at least one min_rtt (and 5 ms) long, taken at
 * once when a sample is higher and halved towards it when lower; min_rtt is the least RTT of
 * the last 10 s (a later one replaces it after that). While queries wait, a sample sees the
 * whole window answered within one RTT, so the window doubles per RTT until the demand is met
 * or the server queues: its RTT then rises above min_rtt, the answers per second stop rising,
 * and so does the window; the gain of 2 bounds that queue to about one min_rtt of answers.
 * Over a LAN the product is far below --conn-inflight and the floor rules, as before. The
 * least RTT undercounts a recursive server's misses, slower than the cached answers that set
 * it: while queries wait for room, conn_grow doubles the window each round for as long as the
 * answers per second rise with it (the window is the larger of the two).
 * Safety: the window grows only with answers that came back, so a server that reads or
 * answers slower shrinks it (a server that stops reading a connection leaves the rest in the TCP
 * buffers, and no query is lost; unbound before 1.13 did while 32 requests on it were open,
 * later ones have no such limit: bench/RESULTS.md, 2026-12-05 03:06). A server that closes a
 * connection with more than UPCONN_SPREAD queries in flight (a per-connection limit) caps
 * every window of that upstream at half of that for UP_LIMIT_MS; those queries are sent again
 * like those of any clean close, and the stall check still closes a connection that goes
 * silent. A stall is held against the upstream (it backs off) only when none of its
 * connections answered since the stalled one last did: a server that answers on the others is
 * alive, and one connection that it stopped reading or answering, or a lost flow, costs no
 * back-off, whose SERVFAILs would reach every client; its queries go to another upstream that
 * can take them, else to its other connections.
 * Connections: at most --pool-size per upstream. A query goes to the first ready connection
 * with fewer than UPCONN_SPREAD in flight, so that light traffic stays on the first ones and
 * the others go idle and close after the idle timeout; else to the least loaded one under its
 * window. Another one opens once every open one has UPCONN_SPREAD in flight (or its window, if
 * smaller): a server answers each connection's queries in turn, so under load several
 * connections get more answered than one long queue does. Past UPCONN_NEAR_MAX (2) only for
 * an upstream at least UPCONN_FAR_US (5 ms) away, or when no open one has room: over a WAN
 * more connections carry losses and a server's pauses (BBR's ProbeRTT) better, on a LAN they
 * only cost CPU (up_may_grow). The last connection of an upstream
 * that closes idle while queries came recently is opened again at once (standby.h).
 * With the default --pool-size the workers' pools share a budget of connections per
 * upstream, each with a floor of its own (up_budget).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/queue.h>
#include <time.h>

#include "dotgw/doh.h"
#include "dotgw/log.h"
#include "dotgw/standby.h"
#include "dotgw/tls.h"
#include "dotgw/upstream.h"

#define UPCONN_SLOT_BITS 10
#define UPCONN_SLOTS	 (1u << UPCONN_SLOT_BITS)
#define UPCONN_SLOT_MASK (UPCONN_SLOTS - 1)
#define UPCONN_IN_SIZE	 (2 + DNS_MAX_MSG)
#define UPCONN_OUT_MAX	 (4u << 20) /* bytes waiting for the transport at most */
#define UPCONN_SPREAD	 16	    /* in flight on each connection: open another (upstream_conn) */
#define UPCONN_NEAR_MAX	 2	    /* connections to an upstream closer than UPCONN_FAR_US */
#define UPCONN_FAR_US	 5000	    /* least RTT from which an upstream gets all of --pool-size */
#define UPCONN_WIN_MAX	 (UPCONN_SLOTS - 16) /* the window's cap; the rest keeps room for probes */
#define UPCONN_WIN_GAIN	 2		     /* the window is this many bandwidth-delay products */
#define UPCONN_SAMPLE_US 5000	 /* a rate sample spans at least this, and the min RTT */
#define UPCONN_MINRTT_MS 10000	 /* a min-RTT sample is trusted this long */
#define UPCONN_ROUND_MAX 1000000 /* a round of conn_grow lasts at most this, in µs */
#define UP_GROW_FAILS	 2	 /* rounds without more answers before the probe ends */
#define UP_GROW_HOLD_MS	 100	 /* the first hold after a probe that did not pay (doubling) */
#define UP_LIMIT_MS	 30000	 /* how long a limit learned from a server's close holds */
#define UPQ_MAX_ATTEMPTS 3
#define UPQ_MAX_RESENDS	 4
#define UP_CONNECT_MS	 2000 /* TCP connect + TLS handshake */
#define UP_BACKOFF_MIN	 500  /* first back-off after a failure, doubled per failure */
#define UP_BACKOFF_MAX	 30000

enum upconn_state {
	UC_CLOSED,
	UC_OPENING, /* TCP connect and TLS handshake in progress */
	UC_READY,
};

struct upstream;

struct upconn {
	struct upstream *up;
	enum upconn_state state;
	struct loop_watch watch;
	struct loop_timer timer; /* handshake deadline; stall check or idle deadline when ready */
	struct loop_defer flush; /* queued while out holds queries not yet given to the transport */
	struct tls_conn *tls;	 /* while not UC_CLOSED */
	uint8_t *out;		 /* framed queries not yet taken by the transport */
	size_t out_off, out_len, out_cap;
	uint8_t *in; /* UPCONN_IN_SIZE octets while open */
	size_t in_len;
	uint64_t progress_ms;  /* last answer, or when queries started to be in flight */
	uint64_t progress_seq; /* up->answer_seq then (conn_progress) */
	uint64_t idle_ms;      /* this connection's idle timeout (keepalive may shorten it) */
	struct upstream_query probe;
	bool pinged;   /* the transport's probe (ping) is out */
	bool fallback; /* a connection to the upstream's DoH fallback (port 443) */
	bool reprobe;  /* on the fallback, this one tries port 853 again */
	unsigned int inflight;
	/*
	 * The in-flight window (see the file's comment): at most window queries in flight.
	 * rate: answers per second, estimated over samples of est_answers answers since
	 * est_start_us; min_rtt_us: the least RTT seen since min_rtt_ms (0: none yet).
	 */
	unsigned int window, est_answers;
	uint64_t rate, est_start_us, min_rtt_us, min_rtt_ms;
	/*
	 * Growth for slow answers (conn_grow): rounds of round_us from round_start_us (0: none
	 * yet), with round_answers answers, round_max_us their largest RTT, round_rtt_us their
	 * RTTs' sum. probe_w: the window the probe asks for (0: none); probe_ok: the last one
	 * whose round's answers per second rose by a quarter (0: none); probe_rate: the rate of
	 * the round before probe_w was set; probe_fails: rounds since, without that rise; no
	 * probe before probe_hold_ms; hold_ms: the next such hold.
	 */
	unsigned int probe_w, probe_ok, probe_fails, round_answers;
	uint64_t probe_rate, probe_hold_ms, hold_ms, round_start_us, round_us, round_max_us;
	uint64_t round_rtt_us, round_wait_seq; /* up->wait_seq at round_start_us */
	/*
	 * Free slots in a FIFO ring, and a generation per slot: a slot comes back only after
	 * every other free one, and its id then differs, so a late answer to a cancelled query
	 * matches a new one only after 64 x 1024 queries on this connection.
	 */
	uint16_t nfree, free_head;
	uint16_t free_slots[UPCONN_SLOTS];
	uint8_t slot_gen[UPCONN_SLOTS];
	struct upstream_query *slots[UPCONN_SLOTS];
};

struct upstream {
	struct upstream_pool *pool;
	const struct upstream_config *cfg;
	unsigned int idx;
	unsigned int fails; /* consecutive failures */
	/* answers (and DoH pongs) on any of its connections so far: which came after a
	 * connection's progress (conn_progress), however close in time */
	uint64_t answer_seq;
	/*
	 * Written by the pool's worker only, read by others too (metrics, SIGUSR1): atomic,
	 * written with relaxed stores (stats_add) where it matters.
	 */
	_Atomic uint64_t down_until_ms;
	_Atomic uint64_t srtt_us; /* smoothed RTT of answers (0: none yet) */
	_Atomic uint64_t handshakes, resumed, failures, answers;
	/* by transport (conn_tr): queries sent, answers, handshakes, resumed */
	_Atomic uint64_t tr_queries[UPSTREAM_TR_N], tr_answers[UPSTREAM_TR_N];
	_Atomic uint64_t tr_handshakes[UPSTREAM_TR_N], tr_resumed[UPSTREAM_TR_N];
	_Atomic uint64_t error_resent; /* conn_resend_error */
	_Atomic uint64_t rtt[UPSTREAM_RTT_BUCKETS], rtt_sum_us;
	_Atomic unsigned int open; /* connections not UC_CLOSED */
	/* the count of all workers' open connections to it (cfg->pool_open[idx]) when they
	 * share a budget (up_budget); NULL: pool_size of its own */
	_Atomic unsigned int *open_all;
	struct upconn *conns; /* pool_size of them */
	struct upconn *last;  /* where the last query went */
	/* the server closed a connection with queries in flight: windows stay below limit
	 * until limit_until_ms (0: no limit) */
	unsigned int limit;
	uint64_t limit_until_ms;
	uint64_t last_query_ms, standby_ms; /* standby.h: last query taken, last standby opened */
	/* queries that found no connection with room so far (conn_grow: which came after a
	 * round's start, however close in time) */
	uint64_t wait_seq;
	/* port 853 failed and the DoH fallback is used; 853 is tried again at doh_probe_ms */
	bool doh_fb, doh_logged;
	uint64_t doh_probe_ms;
};

struct upstream_pool {
	struct loop *loop;
	struct stats *stats;
	const struct config *cfg;
	const struct upstream_transport *tr;
	struct tls_ctx *tls;
	unsigned int rr; /* round-robin position */
	struct log_ratelimit late_rl, local_rl;
	/*
	 * Queries waiting for room, in order, sent on as slots free up: [0] first, then [1],
	 * the bulk ones (uq->bulk: their client is past its default share), so that one client's
	 * excess never queues the others' queries behind it.
	 */
	TAILQ_HEAD(, upstream_query) waiting[2];
	bool closing; /* upstream_pool_free runs: no standby connection opens */
	size_t n;
	struct upstream ups[];
};

const unsigned int upstream_rtt_bounds_ms[UPSTREAM_RTT_BUCKETS - 1] = {1,   2,	 5,   10,   20,	 50,
								       100, 200, 500, 1000, 2000};

/* ". IN NS": every resolver answers it from cache; the probe of a silent connection. */
static const uint8_t probe_query[] = {0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1};
static struct dns_msg probe_msg;

static void conn_io(struct upconn *c);
static void conn_send(struct loop_defer *d);
static void conn_close(struct upconn *c, int err, bool fault);
static void conn_arm(struct upconn *c);
static void conn_standby(struct upconn *c);
static bool pool_dispatch(struct upstream_pool *pool, struct upstream_query *uq);
static struct upstream *pool_pick(struct upstream_pool *pool, const struct upstream_query *uq);
static void pool_wait_head(struct upstream_pool *pool, struct upstream_query *uq);
static void pool_unwait(struct upstream_pool *pool, struct upstream_query *uq);
static void pool_drain_waiting(struct upstream_pool *pool);
static struct upstream_query *pool_first_waiting(const struct upstream_pool *pool);
static int pool_dispatch_to(struct upconn *c, struct upstream_query *uq);
static void conn_estimate(struct upconn *c, uint64_t now, uint64_t rtt);
static void conn_grow(struct upconn *c, uint64_t now, uint64_t rtt);
static bool upstream_doh_fallback(struct upconn *c, int err);

/* conn_tr - the transport of c: DoH for a DoH upstream or a DoT upstream's fallback. */
static enum upstream_tr conn_tr(const struct upconn *c)
{
	return c->fallback || c->up->cfg->doh_path[0] ? UPSTREAM_TR_DOH : UPSTREAM_TR_DOT;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

int upstream_pool_new(struct upstream_pool **out, struct loop *loop, const struct config *cfg,
		      struct stats *stats)
{
	/* tls.c for DoT upstreams, HTTP/2 over it for DoH ones */
	return upstream_pool_new_transport(out, loop, cfg, stats, &doh_transport);
}

/*
 * pool_new - a pool of the n upstreams ups (cfg's, or one found at run time) over tr; its TLS
 * context is new (tr->ctx_new) or, with like, shares like's (tr->ctx_share).
 */
static int pool_new(struct upstream_pool **out, struct loop *loop, const struct config *cfg,
		    struct stats *stats, const struct upstream_transport *tr,
		    const struct upstream_config *ups, size_t n, const struct upstream_pool *like)
{
	struct upstream_pool *pool;
	int r;

	/* the first call comes from the main thread before any worker runs; later ones (reload)
	 * leave probe_msg alone, as the workers read it */
	if (!probe_msg.qdcount && dns_msg_parse(&probe_msg, probe_query, sizeof(probe_query)) < 0)
		return -EINVAL;
	pool = calloc(1, sizeof(*pool) + n * sizeof(pool->ups[0]));
	if (!pool)
		return -ENOMEM;
	r = like ? tr->ctx_share(&pool->tls, cfg, like->tls, ups) : tr->ctx_new(&pool->tls, cfg);
	if (r < 0) {
		free(pool);
		return r;
	}
	TAILQ_INIT(&pool->waiting[0]);
	TAILQ_INIT(&pool->waiting[1]);
	pool->tr = tr;
	pool->loop = loop;
	pool->stats = stats;
	pool->cfg = cfg;
	pool->n = n;
	for (size_t i = 0; i < pool->n; i++) {
		struct upstream *up = &pool->ups[i];

		up->pool = pool;
		up->cfg = &ups[i];
		up->idx = (unsigned int)i;
		/* cfg's own upstreams share the budget; one found at run time has its own */
		if (!like && cfg->pool_floor && cfg->pool_open)
			up->open_all = &cfg->pool_open[i];
		up->conns = calloc(cfg->pool_size, sizeof(*up->conns));
		if (!up->conns) {
			upstream_pool_free(pool);
			return -ENOMEM;
		}
		for (unsigned int k = 0; k < cfg->pool_size; k++) {
			up->conns[k].up = up;
			up->conns[k].watch.fd = -1;
			loop_timer_init(&up->conns[k].timer, NULL);
			loop_defer_init(&up->conns[k].flush, conn_send);
		}
	}
	*out = pool;
	return 0;
}

int upstream_pool_new_transport(struct upstream_pool **out, struct loop *loop,
				const struct config *cfg, struct stats *stats,
				const struct upstream_transport *tr)
{
	return pool_new(out, loop, cfg, stats, tr, cfg->upstreams, cfg->n_upstreams, NULL);
}

int upstream_pool_new_single(struct upstream_pool **out, struct loop *loop,
			     const struct config *cfg, struct stats *stats,
			     const struct upstream_config *u, const struct upstream_pool *like)
{
	if (!like->tr->ctx_share)
		return -EOPNOTSUPP;
	return pool_new(out, loop, cfg, stats, like->tr, u, 1, like);
}

void upstream_pool_free(struct upstream_pool *pool)
{
	struct upstream_query *uq;

	if (!pool)
		return;
	pool->closing = true;
	/* Forget the waiting queries first: closing a connection must not send them on. */
	while ((uq = pool_first_waiting(pool)))
		pool_unwait(pool, uq);
	for (size_t i = 0; i < pool->n; i++) {
		struct upstream *up = &pool->ups[i];

		for (unsigned int k = 0; up->conns && k < pool->cfg->pool_size; k++) {
			struct upconn *c = &up->conns[k];

			/* Forget the queries: the caller is tearing everything down. */
			for (unsigned int s = 0; s < UPCONN_SLOTS; s++)
				if (c->slots[s]) {
					c->slots[s]->conn = NULL;
					c->slots[s] = NULL;
				}
			c->inflight = 0;
			conn_close(c, 0, false);
		}
		free(up->conns);
	}
	pool->tr->ctx_free(pool->tls);
	free(pool);
}

void upstream_pool_snapshot(const struct upstream_pool *pool, size_t i, struct upstream_snapshot *s)
{
	const struct upstream *up = &pool->ups[i];

	/* another thread: the loop's cached time is not ours to read, the clock is the same */
	s->handshakes += stats_get(&up->handshakes);
	s->resumed += stats_get(&up->resumed);
	s->failures += stats_get(&up->failures);
	s->answers += stats_get(&up->answers);
	for (size_t b = 0; b < UPSTREAM_RTT_BUCKETS; b++)
		s->rtt[b] += stats_get(&up->rtt[b]);
	s->rtt_sum_us += stats_get(&up->rtt_sum_us);
	for (size_t t = 0; t < UPSTREAM_TR_N; t++) {
		s->tr_queries[t] += stats_get(&up->tr_queries[t]);
		s->tr_answers[t] += stats_get(&up->tr_answers[t]);
		s->tr_handshakes[t] += stats_get(&up->tr_handshakes[t]);
		s->tr_resumed[t] += stats_get(&up->tr_resumed[t]);
	}
	s->doh_resent += stats_get(&up->error_resent);
	s->can[UPSTREAM_TR_DOT] |= !up->cfg->doh_path[0];
	s->can[UPSTREAM_TR_DOH] |= up->cfg->doh_path[0] || up->cfg->doh_fallback[0];
	if (pool->tr->snapshot)
		pool->tr->snapshot(pool->tls, i, s);
	if (stats_get(&up->srtt_us)) {
		s->srtt_us_sum += stats_get(&up->srtt_us);
		s->srtt_n++;
	}
	s->open += atomic_load_explicit(&up->open, memory_order_relaxed);
	if (stats_get(&up->down_until_ms) <= now_us() / 1000)
		s->usable = true;
}

size_t upstream_pool_count(const struct upstream_pool *pool)
{
	return pool->n;
}

const char *upstream_pool_name(const struct upstream_pool *pool, size_t i)
{
	return pool->ups[i].cfg->text;
}

bool upstream_pool_idle(const struct upstream_pool *pool)
{
	if (pool_first_waiting(pool))
		return false;
	for (size_t i = 0; i < pool->n; i++)
		for (unsigned int k = 0; k < pool->cfg->pool_size; k++)
			if (pool->ups[i].conns[k].inflight)
				return false;
	return true;
}

/* --- connection life ------------------------------------------------------------------ */

/*
 * up_count - one more connection of up open (delta 1) or one fewer (-1): the pool's count,
 * which other threads read (metrics), and all workers' (open_all).
 */
static void up_count(struct upstream *up, int delta)
{
	atomic_store_explicit(&up->open,
			      atomic_load_explicit(&up->open, memory_order_relaxed) +
				      (unsigned int)delta,
			      memory_order_relaxed);
	if (up->open_all)
		atomic_fetch_add_explicit(up->open_all, (unsigned int)delta, memory_order_relaxed);
}

/*
 * The budget the workers share (config.h, pool_floor), with the default --pool-size only: a
 * worker's pool may open up to pool_size (CONFIG_POOL_TOTAL) connections to an upstream, so
 * that one busy worker uses what idle ones leave (nfqueue spreads packets over the queues by
 * a hash of the addresses: one busy client is one worker's); all workers' together stay
 * within pool_size, except that each may always open its floor (pool_floor: 4 / workers, at
 * least 1), so that a busy worker never starves another. A worker past its floor while all
 * hold more than pool_size (another opened within its floor meanwhile) gives one back
 * (up_surplus). One relaxed counter per upstream, written only when a connection opens or
 * closes: two workers opening at the same instant may pass the budget, and the give-back
 * brings it down again. up_budget - may this pool, with open connections to up, open one more?
 */
static bool up_budget(const struct upstream *up, unsigned int open)
{
	const struct config *cfg = up->pool->cfg;

	return !up->open_all || open < cfg->pool_floor ||
	       atomic_load_explicit(up->open_all, memory_order_relaxed) < cfg->pool_size;
}

/*
 * up_surplus - the connection this pool gives back (see up_budget): its last open one to up,
 * which takes no new query and closes once it has none in flight (conn_arm); NULL: none.
 */
static struct upconn *up_surplus(const struct upstream *up)
{
	const struct config *cfg = up->pool->cfg;

	if (!up->open_all ||
	    atomic_load_explicit(&up->open, memory_order_relaxed) <= cfg->pool_floor ||
	    atomic_load_explicit(up->open_all, memory_order_relaxed) <= cfg->pool_size)
		return NULL;
	for (unsigned int k = cfg->pool_size; k-- > 0;)
		if (up->conns[k].state != UC_CLOSED)
			return &up->conns[k];
	return NULL;
}

static void conn_event(struct loop_watch *w, uint32_t revents)
{
	struct upconn *c = container_of(w, struct upconn, watch);

	(void)revents;
	conn_io(c);
}

/*
 * conn_progress - c made progress now: answered (an answer or a DoH pong on it), or it became
 * ready, or its first query in flight left. Besides the time (the stall check's), it keeps the
 * count of its upstream's answers then: the stall check tells an answer on another connection
 * after this one's progress from one before it by that count, not by the time, which cannot
 * tell two events of one millisecond (or of one loop iteration) apart.
 */
static void conn_progress(struct upconn *c, bool answered)
{
	c->progress_ms = loop_now_ms(c->up->pool->loop);
	if (answered)
		c->up->answer_seq++;
	c->progress_seq = c->up->answer_seq;
}

/* conn_probe - send the health probe on a connection that went silent. */
static void conn_probe(struct upconn *c)
{
	struct upstream_pool *pool = c->up->pool;
	struct upstream_query *uq = &c->probe;

	if (uq->conn || c->pinged || c->nfree == 0)
		return; /* one at a time; no room: the stall deadline decides */
	if (pool->tr->ping && pool->tr->ping(c->tls) > 0) {
		/* DoH: an HTTP/2 PING instead of a query; its answer counts as progress */
		c->pinged = true;
		stats_add(&pool->stats->upstream_probes, 1);
		log_debug("upstream %s: no answer for %llu ms, pinging the connection",
			  c->up->cfg->text,
			  (unsigned long long)(loop_now_ms(pool->loop) - c->progress_ms));
		return;
	}
	memset(uq, 0, sizeof(*uq));
	uq->msg = probe_query;
	uq->len = sizeof(probe_query);
	uq->m = &probe_msg;
	uq->deadline_ms = UINT64_MAX;
	uq->probe = 1;
	stats_add(&pool->stats->upstream_probes, 1);
	log_debug("upstream %s: no answer for %llu ms, probing the connection", c->up->cfg->text,
		  (unsigned long long)(loop_now_ms(pool->loop) - c->progress_ms));
	pool_dispatch_to(c, uq);
}

/*
 * conn_prefer_others - c stalled while its upstream answers elsewhere: each of its queries
 * that another usable upstream can take goes there, as after a fault; the others stay with
 * this upstream, which does not back off.
 */
static void conn_prefer_others(struct upconn *c)
{
	struct upstream_pool *pool = c->up->pool;
	uint32_t bit = 1u << c->up->idx;

	for (unsigned int s = 0; s < UPCONN_SLOTS; s++) {
		struct upstream_query *uq = c->slots[s];

		if (!uq || uq->probe || (uq->tried & bit))
			continue;
		uq->tried |= bit;
		if (!pool_pick(pool, uq))
			uq->tried &= ~bit;
	}
}

static void conn_timeout(struct loop_timer *t)
{
	struct upconn *c = container_of(t, struct upconn, timer);
	struct upstream_pool *pool = c->up->pool;
	uint64_t now = loop_now_ms(pool->loop), stall = pool->cfg->stall_ms;

	if (c->state != UC_READY) {
		log_debug("upstream %s: connect/handshake timed out", c->up->cfg->text);
		conn_close(c, -ETIMEDOUT, true);
		return;
	}
	if (c->inflight == 0 && c == up_surplus(c->up)) {
		log_debug("upstream %s: the workers hold more than %u connections: giving one back",
			  c->up->cfg->text, pool->cfg->pool_size);
		conn_close(c, 0, false);
		return;
	}
	if (c->inflight == 0) {
		log_debug("upstream %s: connection idle for %llu ms, closing", c->up->cfg->text,
			  (unsigned long long)c->idle_ms);
		stats_add(&pool->stats->upstream_idle_closed, 1);
		conn_close(c, 0, false);
		return;
	}
	if (now >= c->progress_ms + stall) {
		/* the upstream answered on another connection meanwhile: it is alive, only this
		 * connection is stuck (a server that stops reading it while its requests stay
		 * open, a lost flow): no back-off; its queries go to another upstream if one
		 * can take them, else to this one's other connections */
		bool alive = c->up->answer_seq > c->progress_seq;

		stats_add(&pool->stats->upstream_stalled, 1);
		log_warn(
			"upstream %s: no answer for %llu ms with %u queries in flight, closing the "
			"connection and sending them again%s",
			c->up->cfg->text, (unsigned long long)(now - c->progress_ms), c->inflight,
			alive ? " (it answers on another connection: not backing off)" : "");
		if (alive)
			conn_prefer_others(c);
		conn_close(c, -ETIMEDOUT, !alive);
		return;
	}
	if (now >= c->progress_ms + stall / 2)
		conn_probe(c);
	conn_arm(c);
}

/*
 * conn_arm - set the timer of a ready connection: stall check, or idle deadline (now for one
 * given back: up_surplus).
 */
static void conn_arm(struct upconn *c)
{
	struct upstream_pool *pool = c->up->pool;
	uint64_t stall = pool->cfg->stall_ms, when;

	if (c->state != UC_READY)
		return;
	if (c->inflight) {
		when = c->progress_ms + stall / 2;
		if (when <= loop_now_ms(pool->loop) || c->probe.conn || c->pinged)
			when = c->progress_ms + stall;
	} else if (c == up_surplus(c->up)) {
		when = loop_now_ms(pool->loop);
	} else {
		when = loop_now_ms(pool->loop) + c->idle_ms;
	}
	if (!loop_timer_armed(&c->timer) || c->timer.when_ms != when)
		loop_timer_set(pool->loop, &c->timer, when);
}

/*
 * upstream_local_error - a connection to up could not be opened or set up because of this
 * machine (err_is_local, or any step before connect): counted and logged, never held against
 * the upstream, which does not back off.
 */
static void upstream_local_error(struct upstream *up, int err, const char *what)
{
	struct upstream_pool *pool = up->pool;

	stats_add(&pool->stats->upstream_local_errors, 1);
	log_ratelimited(&pool->local_rl, LOG_LVL_WARN,
			"upstream %s: cannot %s: %s (a local error: the upstream is not blamed)",
			up->cfg->text, what, strerror(-err));
}

/*
 * conn_open - start connecting c. 0, or -errno with *local set when the failure was this
 * machine's (see tls_conn_open).
 */
static int conn_open(struct upconn *c, bool *local)
{
	struct upstream *up = c->up;
	struct upstream_pool *pool = up->pool;
	int r;

	c->fallback = up->doh_fb;
	c->reprobe = false;
	if (up->doh_fb && loop_now_ms(pool->loop) >= up->doh_probe_ms) {
		/* at most once per --doh-reprobe, this connection tries 853 again */
		c->fallback = false;
		c->reprobe = true;
		up->doh_probe_ms = loop_now_ms(pool->loop) + pool->cfg->doh_reprobe_s * 1000ull;
	}
	r = pool->tr->open(pool->tls, up->idx | (c->fallback ? UPSTREAM_FALLBACK : 0), &c->tls,
			   local);
	if (r < 0)
		return r;
	*local = true;
	c->in = malloc(UPCONN_IN_SIZE);
	if (!c->in) {
		r = -ENOMEM;
		goto out_close;
	}
	c->in_len = 0;
	c->watch.fd = pool->tr->fd(c->tls);
	c->watch.cb = conn_event;
	r = loop_watch_add(pool->loop, &c->watch, EPOLLIN | EPOLLOUT);
	if (r < 0)
		goto out_free;
	c->timer.cb = conn_timeout;
	r = loop_timer_set(pool->loop, &c->timer, loop_now_ms(pool->loop) + UP_CONNECT_MS);
	if (r < 0)
		goto out_unwatch;
	c->state = UC_OPENING;
	c->pinged = false;
	c->idle_ms = pool->cfg->idle_ms;
	c->nfree = UPCONN_SLOTS;
	c->free_head = 0;
	for (unsigned int i = 0; i < UPCONN_SLOTS; i++)
		c->free_slots[i] = (uint16_t)i;
	c->inflight = 0;
	c->window = pool->cfg->conn_inflight < UPCONN_WIN_MAX ? pool->cfg->conn_inflight
							      : UPCONN_WIN_MAX;
	c->rate = 0;
	c->est_answers = 0;
	c->min_rtt_us = 0;
	c->probe_w = c->probe_ok = c->probe_fails = 0;
	c->probe_hold_ms = 0;
	c->hold_ms = UP_GROW_HOLD_MS;
	/* the round a closed connection left unfinished is not this one's: its largest RTT
	 * would set the length of the first round here */
	c->round_start_us = c->round_max_us = 0;
	up_count(up, 1);
	log_debug("upstream %s: connecting", up->cfg->text);
	return 0;

out_unwatch:
	loop_watch_del(pool->loop, &c->watch);
out_free:
	free(c->in);
	c->in = NULL;
out_close:
	pool->tr->close(c->tls, false);
	c->tls = NULL;
	c->watch.fd = -1;
	return r;
}

static void upstream_mark_failed(struct upstream *up, int err)
{
	struct upstream_pool *pool = up->pool;
	uint64_t backoff = UP_BACKOFF_MIN;

	for (unsigned int i = 0; i < up->fails && backoff < UP_BACKOFF_MAX; i++)
		backoff *= 2;
	if (backoff > UP_BACKOFF_MAX)
		backoff = UP_BACKOFF_MAX;
	up->fails++;
	stats_add(&up->failures, 1);
	atomic_store_explicit(&up->down_until_ms, loop_now_ms(pool->loop) + backoff,
			      memory_order_relaxed);
	stats_add(&pool->stats->upstream_failures, 1);
	if (up->fails == 1)
		log_warn("upstream %s: unusable (%s), retrying in %llu ms", up->cfg->text,
			 strerror(-err), (unsigned long long)backoff);
	else
		log_debug("upstream %s: still unusable (%s), retrying in %llu ms", up->cfg->text,
			  strerror(-err), (unsigned long long)backoff);
}

/*
 * conn_close - tear the connection down. fault: the upstream misbehaved or is unreachable,
 * so it backs off and the queries are not sent to it again. Queries in flight are sent again
 * (pool_dispatch), after the connection is fully reset, with the rest of the wait list; the
 * probe is simply forgotten; abandoned queries are not sent again, their complete() tells
 * them of the close. Callers return right after it, without draining again.
 */
static void conn_close(struct upconn *c, int err, bool fault)
{
	struct upstream *up = c->up;
	struct upstream_pool *pool = up->pool;
	unsigned int retry = 0;
	bool idle = c->state == UC_READY && !fault && !c->inflight && (!err || err == -ECONNRESET);
	TAILQ_HEAD(, upstream_query) gone = TAILQ_HEAD_INITIALIZER(gone); /* abandoned ones */
	struct upstream_query *ab;

	if (fault && c->state == UC_OPENING && !c->fallback && err != -EPERM &&
	    up->cfg->doh_fallback[0] && pool->cfg->upstreams == up->cfg - up->idx)
		fault = !upstream_doh_fallback(c, err);
	else if (fault && c->state == UC_OPENING && c->fallback && up->doh_fb) {
		/* the fallback does not work either: back to 853 first after the back-off */
		log_debug("upstream %s: its DoH fallback failed too (%s)", up->cfg->text,
			  strerror(-err));
		up->doh_fb = false;
	}
	if (!fault && err == -ECONNRESET && c->state == UC_READY && c->inflight > UPCONN_SPREAD) {
		/* the server closed under load: perhaps its limit per connection; stay below */
		up->limit = c->inflight / 2 > UPCONN_SPREAD ? c->inflight / 2 : UPCONN_SPREAD;
		up->limit_until_ms = loop_now_ms(pool->loop) + UP_LIMIT_MS;
		log_info("upstream %s: closed a connection with %u queries in flight; at most %u "
			 "per connection for %u s",
			 up->cfg->text, c->inflight, up->limit, UP_LIMIT_MS / 1000);
	}
	/*
	 * The queries go to the head of the pool's wait list, where upstream_query_cancel()
	 * finds them: completing one may close a client and cancel its siblings meanwhile.
	 */
	for (unsigned int s = 0; s < UPCONN_SLOTS && c->inflight; s++) {
		struct upstream_query *uq = c->slots[s];

		if (!uq)
			continue;
		c->slots[s] = NULL;
		c->inflight--;
		uq->conn = NULL;
		if (uq->probe)
			continue;
		if (uq->abandoned) { /* not sent again: told of the close below */
			TAILQ_INSERT_TAIL(&gone, uq, wait);
			continue;
		}
		if (fault)
			uq->tried |= 1u << up->idx;
		/* a server closing cleanly (idle, restart) is not the query's failure: send it
		 * again without spending an attempt, a few times */
		if (!fault && uq->resends < UPQ_MAX_RESENDS && uq->attempts) {
			uq->resends++;
			uq->attempts--;
		}
		pool_wait_head(pool, uq);
		retry++;
	}
	c->inflight = 0;
	if (c->watch.fd >= 0) {
		loop_watch_del(pool->loop, &c->watch);
		c->watch.fd = -1;
	}
	/* a clean close keeps the session resumable (see tls_conn_close) */
	if (c->tls)
		pool->tr->close(c->tls,
				c->state == UC_READY && !fault && (err == 0 || err == -ECONNRESET));
	c->tls = NULL;
	loop_timer_cancel(pool->loop, &c->timer);
	loop_defer_cancel(pool->loop, &c->flush);
	free(c->in);
	c->in = NULL;
	free(c->out);
	c->out = NULL;
	c->out_off = c->out_len = c->out_cap = 0;
	if (c->state != UC_CLOSED)
		up_count(up, -1);
	c->state = UC_CLOSED;
	if (fault)
		upstream_mark_failed(up, err);
	stats_add(&pool->stats->upstream_retries, retry);
	/* -ETIMEDOUT only for a stalled connection of an upstream that answers on others: it
	 * may well still hold them (upstream.h) */
	if (!err || (fault && err == -ETIMEDOUT))
		err = -ECONNRESET;
	while ((ab = TAILQ_FIRST(&gone))) {
		TAILQ_REMOVE(&gone, ab, wait);
		ab->complete(ab, NULL, NULL, err);
	}
	pool_drain_waiting(pool);
	if (idle)
		conn_standby(c);
}

/* conn_standby - c closed while idle: open it again at once if standby.h says so. */
static void conn_standby(struct upconn *c)
{
	struct upstream *up = c->up;
	struct upstream_pool *pool = up->pool;
	uint64_t now = loop_now_ms(pool->loop);
	bool local;

	if (pool->closing || c->state != UC_CLOSED ||
	    !standby_due(now, up->last_query_ms, up->standby_ms, pool->cfg->standby_s,
			 atomic_load_explicit(&up->open, memory_order_relaxed)))
		return;
	up->standby_ms = now;
	if (conn_open(c, &local) < 0)
		return; /* not held against anyone: the next query opens one and reports */
	stats_add(&pool->stats->upstream_standby, 1);
	log_debug("upstream %s: standby connection for the next query", up->cfg->text);
}

/*
 * upstream_doh_fallback - a connection to c's upstream at port 853 failed with err before it
 * was ready: use the DoH fallback (logged once, with the reason), or, when c was the re-probe
 * of 853, stay on it. Returns true: the failure is not held against the upstream (its queries
 * are sent again, over DoH).
 */
static bool upstream_doh_fallback(struct upconn *c, int err)
{
	struct upstream *up = c->up;

	if (c->reprobe) {
		/* the interval counts from this outcome: a re-probe never follows one at once */
		up->doh_probe_ms =
			loop_now_ms(up->pool->loop) + up->pool->cfg->doh_reprobe_s * 1000ull;
		log_debug("upstream %s: port 853 still unreachable (%s), staying on DoH",
			  up->cfg->text, strerror(-err));
		return true;
	}
	if (up->doh_fb)
		return false; /* an 853 connection opened before the switch: fail as usual */
	up->doh_fb = true;
	up->doh_probe_ms = loop_now_ms(up->pool->loop) + up->pool->cfg->doh_reprobe_s * 1000ull;
	log_msg(up->doh_logged ? LOG_LVL_DEBUG : LOG_LVL_WARN,
		"upstream %s: cannot connect to port 853 (%s); using its DNS-over-HTTPS "
		"fallback at port 443 (%s), trying 853 again every %u s",
		up->cfg->text, strerror(-err), up->cfg->doh_fallback, up->pool->cfg->doh_reprobe_s);
	up->doh_logged = true; /* once; moving back is logged each time */
	return true;
}

static void conn_handshake_done(struct upconn *c)
{
	struct upstream *up = c->up;
	struct upstream_pool *pool = up->pool;
	bool resumed = pool->tr->resumed(c->tls);

	loop_timer_cancel(pool->loop, &c->timer);
	if (c->reprobe && up->doh_fb) {
		up->doh_fb =
			false; /* the DoH connections take no new queries and close when idle */
		log_warn("upstream %s: port 853 works again; back to DNS-over-TLS", up->cfg->text);
	}
	c->state = UC_READY;
	conn_progress(c, false);
	c->est_start_us = now_us();
	stats_add(&pool->stats->upstream_handshakes, 1);
	stats_add(&up->handshakes, 1);
	stats_add(&up->tr_handshakes[conn_tr(c)], 1);
	if (resumed) {
		stats_add(&pool->stats->upstream_resumed, 1);
		stats_add(&up->resumed, 1);
		stats_add(&up->tr_resumed[conn_tr(c)], 1);
	}
	if (pool->tr->unverified(c->tls))
		stats_add(&pool->stats->upstream_unverified, 1);
	if (up->fails)
		log_info("upstream %s: usable again", up->cfg->text);
	up->fails = 0;
	atomic_store_explicit(&up->down_until_ms, 0, memory_order_relaxed);
	conn_arm(c);
}

/* --- I/O ---------------------------------------------------------------------------- */

/* conn_flush - hand the output buffer to the transport; 0 (done or would block), or -errno. */
static int conn_flush(struct upconn *c, bool *want_write)
{
	const struct upstream_transport *tr = c->up->pool->tr;

	while (c->out_off < c->out_len) {
		int n = tr->write(c->tls, c->out + c->out_off, c->out_len - c->out_off, want_write);

		if (n <= 0)
			return n;
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	return 0;
}

static void slot_release(struct upconn *c, struct upstream_query *uq)
{
	unsigned int s = uq->id & UPCONN_SLOT_MASK;

	c->slots[s] = NULL;
	c->free_slots[(c->free_head + c->nfree++) & UPCONN_SLOT_MASK] = (uint16_t)s;
	c->inflight--;
	uq->conn = NULL;
}

/* answer_matches - parse ans into r; is it a plausible answer to uq (QR, the question)? */
static bool answer_matches(const struct upstream_query *uq, const uint8_t *ans, size_t len,
			   struct dns_msg *r)
{
	if (dns_msg_parse(r, ans, len) < 0 || !(r->flags & DNS_FLAG_QR))
		return false;
	if (r->qdcount == 1)
		return dns_question_equal(&r->q, &uq->m->q);
	/* Some servers leave the question out of an error answer; a query without a question
	 * (a cookie-only query, RFC 7873 5.4) has none in its answer either. */
	return r->qdcount == 0 &&
	       (uq->m->qdcount == 0 || (r->flags & DNS_RCODE_MASK) != DNS_RCODE_NOERROR);
}

/*
 * conn_resend_error - uq's answer on c is the transport's stand-in SERVFAIL for a failed
 * request (a DoH status other than 200, or a body that is not one DNS message): send uq once
 * more, to another upstream, when one is usable and its deadline allows. Returns true when uq
 * left c for the pool's wait list (the caller's I/O sends it on: conn_io).
 */
static bool conn_resend_error(struct upconn *c, struct upstream_query *uq)
{
	struct upstream *up = c->up;
	struct upstream_pool *pool = up->pool;
	uint32_t bit = 1u << up->idx;
	bool other;

	if (uq->probe || uq->error_resent || loop_now_ms(pool->loop) >= uq->deadline_ms)
		return false;
	uq->tried |= bit;
	other = pool_pick(pool, uq) != NULL;
	if (!other) {
		uq->tried &= ~bit; /* the SERVFAIL stands */
		return false;
	}
	slot_release(c, uq);
	uq->error_resent = 1;
	stats_add(&up->error_resent, 1);
	log_debug("upstream %s: error answer from the transport, sending the query to another "
		  "upstream",
		  up->cfg->text);
	pool_wait_head(pool, uq);
	return true;
}

/*
 * conn_answer - one frame from the upstream (modified in place). Returns 0, or -EPROTO when
 * the upstream broke the protocol (the connection must close).
 */
static int conn_answer(struct upconn *c, uint8_t *ans, size_t len)
{
	struct upstream *up = c->up;
	struct upstream_pool *pool = up->pool;
	struct upstream_query *uq;
	struct dns_msg r;
	uint16_t id, keepalive = UINT16_MAX;
	uint64_t now, rtt, srtt;
	bool failed;

	if (len < DNS_HDR_LEN)
		return -EPROTO;
	id = dns_get16(ans);
	/* asked of every header-only SERVFAIL, late ones included: each is claimed once */
	failed = pool->tr->failed && len == DNS_HDR_LEN &&
		 (ans[3] & DNS_RCODE_MASK) == DNS_RCODE_SERVFAIL && pool->tr->failed(c->tls, id);
	uq = c->slots[id & UPCONN_SLOT_MASK];
	conn_progress(c, true);
	if (!uq || uq->id != id) {
		/* The answer to a query that was cancelled (deadline, client gone). */
		log_ratelimited(&pool->late_rl, LOG_LVL_DEBUG, "upstream %s: late answer, id %u",
				up->cfg->text, id);
		return 0;
	}
	if (failed && !uq->abandoned && conn_resend_error(c, uq))
		return 0;
	if (!answer_matches(uq, ans, len, &r)) {
		stats_add(&pool->stats->upstream_bad_answers, 1);
		log_warn("upstream %s: answer does not match its query, closing the connection",
			 up->cfg->text);
		return -EPROTO;
	}
	slot_release(c, uq);
	if (uq->abandoned) {
		/* its client has had a SERVFAIL: this ends the hold, and its RTT (the
		 * name's own delay) stays out of the connection's estimates */
		stats_add(&pool->stats->upstream_late_answers, 1);
		uq->complete(uq, NULL, NULL, 0);
		return 0;
	}
	/* r now describes the restored answer: nobody downstream parses it again */
	dns_answer_restore_view(ans, &r, uq->m->has_opt, &keepalive);
	if (keepalive != UINT16_MAX) {
		/* RFC 7828: the server's idle timeout, in units of 100 ms; close before it does */
		uint64_t ms = (uint64_t)keepalive * 100;

		ms = ms > 500 ? ms - 500 : 0;
		c->idle_ms = ms < pool->cfg->idle_ms ? ms : pool->cfg->idle_ms;
	}
	now = now_us();
	rtt = now - uq->sent_us;
	conn_estimate(c, now, rtt);
	srtt = stats_get(&up->srtt_us);
	atomic_store_explicit(&up->srtt_us, srtt ? (7 * srtt + rtt) / 8 : rtt,
			      memory_order_relaxed);
	{
		size_t b = 0;

		while (b < UPSTREAM_RTT_BUCKETS - 1 && rtt > upstream_rtt_bounds_ms[b] * 1000ull)
			b++;
		stats_add(&up->rtt[b], 1);
		stats_add(&up->rtt_sum_us, rtt);
	}
	stats_add(&up->answers, 1);
	stats_add(&up->tr_answers[conn_tr(c)], 1);
	if (uq->probe)
		return 0; /* its answer counted as progress; nothing else to do */
	uq->answered_by = up->cfg->text;
	uq->complete(uq, ans, &r, 0);
	return 0;
}

/* conn_read - read and dispatch every complete frame; 0, or -errno to close. */
static int conn_read(struct upconn *c, bool *want_write)
{
	const struct upstream_transport *tr = c->up->pool->tr;

	for (;;) {
		size_t off = 0;
		int n, r;

		n = tr->read(c->tls, c->in + c->in_len, UPCONN_IN_SIZE - c->in_len, want_write);
		if (tr->pong && tr->pong(c->tls)) {
			conn_progress(c, true);
			c->pinged = false;
		}
		if (n <= 0)
			return n;
		c->in_len += (size_t)n;
		for (;;) {
			const uint8_t *msg;
			size_t mlen;

			r = dns_frame_next(c->in, c->in_len, &off, &msg, &mlen);
			if (r < 0)
				return -EPROTO; /* a frame shorter than a header */
			if (r == 0)
				break;
			r = conn_answer(c, (uint8_t *)msg, mlen);
			if (r < 0)
				return r;
			if (c->state != UC_READY)
				return -ECONNRESET; /* closed from a callback */
		}
		if (off) {
			memmove(c->in, c->in + off, c->in_len - off);
			c->in_len -= off;
		}
		if (tr->drained(c->tls))
			return 0; /* all read: the next read would only find EAGAIN */
	}
}

/* pool_first_waiting - the query that waited longest, the bulk ones last; NULL: none. */
static struct upstream_query *pool_first_waiting(const struct upstream_pool *pool)
{
	struct upstream_query *uq = TAILQ_FIRST(&pool->waiting[0]);

	return uq ? uq : TAILQ_FIRST(&pool->waiting[1]);
}

/* pool_drain_waiting - send the waiting queries on, in order, until one finds no room. */
static void pool_drain_waiting(struct upstream_pool *pool)
{
	struct upstream_query *uq;

	while ((uq = pool_first_waiting(pool))) {
		pool_unwait(pool, uq);
		/* uq may be freed by the time this returns: only the result tells */
		if (pool_dispatch(pool, uq)) {
			/* still no room anywhere: back to the head, in order */
			pool_unwait(pool, uq);
			pool_wait_head(pool, uq);
			break;
		}
	}
}

/* conn_fail - I/O on c failed with r (-errno): close it, send its queries elsewhere. */
static void conn_fail(struct upconn *c, int r)
{
	if (c->state == UC_CLOSED)
		return;
	/* A connection that closes is not the upstream's fault unless it broke the protocol;
	 * its queries are retried (on a new connection if need be). */
	if (r != -ECONNRESET || c->inflight)
		log_debug("upstream %s: connection closed (%s), %u queries in flight",
			  c->up->cfg->text, strerror(-r), c->inflight);
	conn_close(c, r, r == -EPROTO);
}

/* conn_handshake - go on opening c; 0 once ready, 1 while opening, -errno when closed. */
static int conn_handshake(struct upconn *c)
{
	struct upstream_pool *pool = c->up->pool;
	bool want_write = false, local;
	int r = pool->tr->handshake(c->tls, &want_write, &local);

	if (r < 0) {
		if (local)
			upstream_local_error(c->up, r, "start TLS");
		conn_close(c, r, !local);
		return r;
	}
	if (r == 0) {
		loop_watch_mod(pool->loop, &c->watch, EPOLLIN | (want_write ? EPOLLOUT : 0));
		return 1;
	}
	conn_handshake_done(c);
	return 0;
}

static void conn_io(struct upconn *c)
{
	struct upstream_pool *pool = c->up->pool;
	bool want_write = false;
	int r;

	if (c->state == UC_OPENING && conn_handshake(c) != 0)
		return;
	loop_defer_cancel(pool->loop, &c->flush); /* everything queued goes now */
	r = conn_flush(c, &want_write);
	if (r == 0)
		r = conn_read(c, &want_write);
	if (r == 0 && c->out_off < c->out_len && !want_write)
		r = conn_flush(c, &want_write); /* reading may have unblocked a write */
	if (r < 0) {
		conn_fail(c, r);
		return;
	}
	loop_watch_mod(pool->loop, &c->watch, EPOLLIN | (want_write ? EPOLLOUT : 0));
	conn_arm(c);
	if (c->nfree && pool_first_waiting(pool))
		pool_drain_waiting(pool);
}

/*
 * conn_send - the deferred flush of a ready connection: the queries queued during this loop
 * iteration leave in one write. Answers are left to the readable event: the loop is about
 * to wait on it, and a read now would nearly always find nothing.
 */
static void conn_send(struct loop_defer *d)
{
	struct upconn *c = container_of(d, struct upconn, flush);
	bool want_write = false;
	int r;

	if (c->state != UC_READY)
		return;
	r = conn_flush(c, &want_write);
	if (r < 0) {
		conn_fail(c, r);
		return;
	}
	loop_watch_mod(c->up->pool->loop, &c->watch, EPOLLIN | (want_write ? EPOLLOUT : 0));
	conn_arm(c);
}

/* --- choosing an upstream and a connection ------------------------------------------ */

static bool upstream_usable(const struct upstream *up, const struct upstream_query *uq,
			    uint64_t now)
{
	return !(uq->tried & (1u << up->idx)) && up->down_until_ms <= now &&
	       (!uq->allowed || (uq->allowed & (1u << up->idx)));
}

static struct upstream *pool_pick(struct upstream_pool *pool, const struct upstream_query *uq)
{
	uint64_t now = loop_now_ms(pool->loop);
	struct upstream *best = NULL;

	switch (pool->cfg->upstream_choice) {
	case UPSTREAM_CHOICE_ROUND_ROBIN:
		for (size_t i = 0; i < pool->n; i++) {
			struct upstream *up = &pool->ups[(pool->rr + i) % pool->n];

			if (upstream_usable(up, uq, now)) {
				pool->rr = (unsigned int)((up->idx + 1) % pool->n);
				return up;
			}
		}
		return NULL;
	case UPSTREAM_CHOICE_FASTEST:
		/* an upstream without an RTT yet counts as fastest, so each gets measured */
		for (size_t i = 0; i < pool->n; i++) {
			struct upstream *up = &pool->ups[i];

			if (upstream_usable(up, uq, now) && (!best || up->srtt_us < best->srtt_us))
				best = up;
		}
		return best;
	case UPSTREAM_CHOICE_ORDERED:
	default:
		for (size_t i = 0; i < pool->n; i++)
			if (upstream_usable(&pool->ups[i], uq, now))
				return &pool->ups[i];
		return NULL;
	}
}

/* conn_window - the queries c may have in flight now (see the file's comment). */
static unsigned int conn_window(struct upconn *c)
{
	struct upstream *up = c->up;

	if (up->limit && c->window > up->limit) {
		if (loop_now_ms(up->pool->loop) < up->limit_until_ms)
			return up->limit;
		up->limit = 0;
	}
	return c->window;
}

/* conn_spread - in flight on c before the next query prefers another connection. */
static unsigned int conn_spread(struct upconn *c)
{
	unsigned int w = conn_window(c);

	return w < UPCONN_SPREAD ? w : UPCONN_SPREAD;
}

/*
 * conn_grow - an answer came back after rtt microseconds, at now: at the end of each round,
 * the window for answers slower than the least RTT. conn_estimate's window is the answers per
 * second times the least RTT; a recursive server's misses take far longer than its cached
 * answers, which set that least RTT, so misses alone would top out at connections x window /
 * miss latency while the server could take more. So while queries wait for room on the
 * upstream (wait_seq), each round doubles the window (probe_w) as long as its answers per
 * second rose by a quarter or more with the last doubling, as BBR's startup does; after
 * UP_GROW_FAILS rounds that did not, the server's answers are not limited by the window
 * but by the server: the window falls back to the last doubling that paid (none: the least
 * RTT's), and the next probe waits: UP_GROW_HOLD_MS after the first such probe, twice as long
 * after each next one, to UPCONN_MINRTT_MS (a probe that paid starts that over). A probe can
 * end early for want of answers (rounds shorter than the misses' RTT at first), and one
 * that did so is tried again soon; against a server that is the limit, probes become rare. A round
 * lasts twice the last round's largest RTT (UPCONN_SAMPLE_US to UPCONN_ROUND_MAX), so that answers
 * to the queries a doubling let out are in it. A round without waits brings the learned window down
 * to twice what its answers kept in flight (their RTTs' sum over the round's span: Little's law),
 * so it follows the load down as the least RTT's window follows the rate. The growth only follows
 * answers that came back, as the least RTT's does.
 */
static void conn_grow(struct upconn *c, uint64_t now, uint64_t rtt)
{
	struct upstream *up = c->up;
	uint64_t now_ms = now / 1000, span, rate;
	bool waited;

	if (rtt > c->round_max_us)
		c->round_max_us = rtt;
	c->round_rtt_us += rtt;
	c->round_answers++;
	if (c->round_start_us && now >= c->round_start_us) {
		span = now - c->round_start_us;
		if (span < c->round_us)
			return;
		rate = (uint64_t)c->round_answers * 1000000 / (span ? span : 1);
		/* by count, not time: a wait of the loop iteration that started the round (the
		 * wait list sent on after its answers) is in the round */
		waited = up->wait_seq != c->round_wait_seq;
		if (waited && now_ms >= c->probe_hold_ms) {
			if (c->probe_w && rate >= c->probe_rate + c->probe_rate / 4) {
				c->probe_ok = c->probe_w;
				c->hold_ms = UP_GROW_HOLD_MS;
			}
			if (!c->probe_w || c->probe_ok == c->probe_w) {
				unsigned int cur = c->window > c->probe_w ? c->window : c->probe_w;

				c->probe_w = cur < UPCONN_WIN_MAX / 2 ? 2 * cur : UPCONN_WIN_MAX;
				c->probe_rate = rate;
				c->probe_fails = 0;
				if (c->window < c->probe_w)
					c->window = c->probe_w;
				log_debug("upstream %s: window %u: %" PRIu64 " answers/s",
					  up->cfg->text, c->probe_w, rate);
			} else if (++c->probe_fails >= UP_GROW_FAILS) {
				log_debug("upstream %s: window back to %u: %" PRIu64
					  " answers/s, no more with %u",
					  up->cfg->text, c->probe_ok, rate, c->probe_w);
				c->probe_w = c->probe_ok;
				c->probe_fails = 0;
				c->probe_hold_ms = now_ms + c->hold_ms;
				c->hold_ms = c->hold_ms < UPCONN_MINRTT_MS / 2 ? 2 * c->hold_ms
									       : UPCONN_MINRTT_MS;
			}
		} else if (!waited && c->probe_w) {
			/* twice what the answers kept in flight (Little's law), if less */
			uint64_t need = (c->round_rtt_us * UPCONN_WIN_GAIN + span - 1) / span;

			if (need < c->probe_w)
				c->probe_w = (unsigned int)need;
			if (c->probe_ok > c->probe_w)
				c->probe_ok = c->probe_w;
		}
	}
	c->round_us = 2 * c->round_max_us;
	c->round_us = c->round_us < UPCONN_SAMPLE_US   ? UPCONN_SAMPLE_US
		      : c->round_us > UPCONN_ROUND_MAX ? UPCONN_ROUND_MAX
						       : c->round_us;
	c->round_start_us = now;
	c->round_wait_seq = up->wait_seq;
	c->round_answers = 0;
	c->round_max_us = 0;
	c->round_rtt_us = 0;
}

/*
 * conn_estimate - an answer came back after rtt microseconds, at now: update c's min RTT and
 * rate, and at the end of each sample its window (see the file's comment).
 */
static void conn_estimate(struct upconn *c, uint64_t now, uint64_t rtt)
{
	uint64_t now_ms = now / 1000, span, sample, w;
	unsigned int floor = c->up->pool->cfg->conn_inflight;

	if (!c->min_rtt_us || rtt <= c->min_rtt_us || now_ms >= c->min_rtt_ms + UPCONN_MINRTT_MS) {
		c->min_rtt_us = rtt ? rtt : 1;
		c->min_rtt_ms = now_ms;
	}
	conn_grow(c, now, rtt);
	c->est_answers++;
	span = now - c->est_start_us;
	if (now < c->est_start_us || span < c->min_rtt_us || span < UPCONN_SAMPLE_US)
		return;
	sample = (uint64_t)c->est_answers * 1000000 / span;
	c->rate = sample >= c->rate ? sample : (c->rate + sample) / 2;
	c->est_answers = 0;
	c->est_start_us = now;
	w = (c->rate * c->min_rtt_us * UPCONN_WIN_GAIN + 999999) / 1000000;
	if (w < c->probe_w)
		w = c->probe_w;
	if (floor > UPCONN_WIN_MAX)
		floor = UPCONN_WIN_MAX;
	c->window = w < floor ? floor : w > UPCONN_WIN_MAX ? UPCONN_WIN_MAX : (unsigned int)w;
}

/*
 * up_may_grow - whether an upstream with open connections, whose least min RTT is min_rtt
 * microseconds (0: none measured yet), may open one more. Past UPCONN_NEAR_MAX only when it is
 * UPCONN_FAR_US away or more (not known yet: yes, as before any answer). A server's pause costs
 * capacity in proportion to its RTT: a connection in BBR's ProbeRTT carries 4 packets a round
 * trip, 12 padded answers, so ~600 answers/s at 20 ms and more than ever needed at 0.2 ms; on
 * a LAN more connections only cost CPU (smaller writes and reads: bench/RESULTS.md,
 * 2026-12-05 03:35-03:50).
 */
static bool up_may_grow(unsigned int open, uint64_t min_rtt)
{
	return open < UPCONN_NEAR_MAX || !min_rtt || min_rtt >= UPCONN_FAR_US;
}

/*
 * upstream_conn - a connection of up with room for one more query: the one that took the last
 * query, while its batch is still being gathered and it has fewer than conn_spread() in flight
 * (queries sent in one loop iteration share a TLS record and a write, where spreading them
 * costs a record and a write per connection); else the first ready one with fewer than
 * conn_spread() in flight (light traffic stays on the first connections, and the others close
 * when idle); else the least loaded ready one under its window, else one still opening, else a
 * new one while the pool has room, else NULL (the query waits). Once every connection has
 * conn_spread() in flight, one more is opened while the pool has room, for the queries that
 * follow (see the file's comment); past UPCONN_NEAR_MAX that needs a far upstream
 * (up_may_grow), or no ready connection with room left; past the pool's floor, room in the
 * budget the workers share (up_budget), and a connection given back (up_surplus) takes no
 * query but a batch's that it already took. Returns -errno through *err when opening
 * failed and no connection can take the query, and whether that failure was this machine's (see
 * conn_open) through *local.
 */
static struct upconn *upstream_conn(struct upstream *up, int *err, bool *local)
{
	unsigned int size = up->pool->cfg->pool_size, open = 0;
	struct upconn *best = up->last, *light = NULL, *opening = NULL, *closed = NULL, *surplus;
	uint64_t min_rtt = 0; /* the least of the open connections' (up_may_grow) */

	*err = 0;
	if (best && best->flush.queued && best->inflight < conn_spread(best) && best->nfree)
		return best;
	best = NULL;
	surplus = up_surplus(up);
	for (unsigned int k = 0; k < size; k++) {
		struct upconn *c = &up->conns[k];

		if (c->state == UC_CLOSED) {
			if (!closed)
				closed = c;
			continue;
		}
		open++;
		if (c->min_rtt_us && (!min_rtt || c->min_rtt_us < min_rtt))
			min_rtt = c->min_rtt_us;
		/* on the fallback, a re-probe of 853 takes no query: it may well time out */
		if (c == surplus || c->inflight >= conn_window(c) || c->nfree == 0 ||
		    (c->fallback && !up->doh_fb) || (c->reprobe && up->doh_fb))
			continue;
		if (c->state == UC_READY) {
			if (!light && c->inflight < conn_spread(c))
				light = c;
			if (!best || c->inflight < best->inflight)
				best = c;
		} else if (!opening) {
			opening = c;
		}
	}
	if (surplus && !surplus->inflight)
		conn_arm(surplus); /* idle already: it closes now */
	*local = false;
	if (closed && up->doh_fb && loop_now_ms(up->pool->loop) >= up->doh_probe_ms) {
		/*
		 * On the DoH fallback: a connection to 853 in the background (conn_open). The
		 * query goes over DoH meanwhile, on another closed slot if it needs one (with
		 * none, it waits for the re-probe's outcome).
		 */
		struct upconn *probe = closed;
		int r = conn_open(probe, local);

		if (r < 0)
			log_debug("upstream %s: cannot try port 853 again: %s", up->cfg->text,
				  strerror(-r));
		else
			open++;
		closed = NULL;
		for (unsigned int k = 0; k < size && !closed; k++)
			if (up->conns[k].state == UC_CLOSED && &up->conns[k] != probe)
				closed = &up->conns[k];
		*local = false;
	}
	if (light)
		return light;
	if (closed && !opening && (!best || best->inflight >= conn_spread(best)) &&
	    (!best || up_may_grow(open, min_rtt)) && up_budget(up, open)) {
		int r = conn_open(closed, local);

		if (r < 0 && *local)
			upstream_local_error(up, r, "open a connection");
		if (!best) {
			*err = r;
			return r ? NULL : closed;
		}
		/* a ready connection takes this query; a failure to open shows again later */
		if (r < 0 && !*local)
			log_debug("upstream %s: cannot open one more connection: %s", up->cfg->text,
				  strerror(-r));
	}
	if (best)
		return best;
	return opening;
}

/* conn_queue - take a slot and frame the (rewritten) query into the output buffer. */
static int conn_queue(struct upconn *c, struct upstream_query *uq)
{
	const struct config *cfg = c->up->pool->cfg;
	size_t need = c->out_len + 2 + DNS_MAX_MSG;
	unsigned int s;
	uint16_t id;
	int n;

	if (need > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		uint8_t *p;

		if (c->out_off && need - c->out_off <= c->out_cap) {
			/* compact: unsent bytes keep their content, as retried TLS writes need */
			memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		} else {
			while (cap < need)
				cap *= 2;
			if (cap > UPCONN_OUT_MAX)
				return -ENOBUFS;
			p = realloc(c->out, cap);
			if (!p)
				return -ENOMEM;
			c->out = p;
			c->out_cap = cap;
		}
	}
	n = dns_query_rewrite(c->out + c->out_len + 2, c->out_cap - c->out_len - 2, uq->msg, uq->m,
			      true, cfg->padding ? DNS_PAD_BLOCK : 0);
	if (n < 0)
		return n;
	s = c->free_slots[c->free_head];
	c->free_head = (uint16_t)((c->free_head + 1) & UPCONN_SLOT_MASK);
	c->nfree--;
	id = (uint16_t)((c->slot_gen[s]++ & 0x3f) << UPCONN_SLOT_BITS | s);
	c->slots[s] = uq;
	if (c->inflight++ == 0)
		conn_progress(c, false);
	uq->conn = c;
	uq->id = id;
	uq->sent_us = now_us();
	dns_put16(c->out + c->out_len, (uint16_t)n);
	dns_put16(c->out + c->out_len + 2, id);
	c->out_len += 2 + (size_t)n;
	return 0;
}

/*
 * pool_dispatch_to - queue uq on connection c; a ready connection sends it at the end of this
 * loop iteration, with whatever else the iteration queues (one TLS record, one write), a
 * connection still opening once its handshake is done.
 */
static int pool_dispatch_to(struct upconn *c, struct upstream_query *uq)
{
	int r = conn_queue(c, uq);

	if (r < 0)
		return r;
	uq->attempts++;
	if (!uq->probe) {
		c->up->last_query_ms = loop_now_ms(c->up->pool->loop);
		stats_add(&c->up->tr_queries[conn_tr(c)], 1);
	}
	if (c->state == UC_READY)
		loop_defer(c->up->pool->loop, &c->flush);
	c->up->last = c;
	return 0;
}

static void pool_wait_head(struct upstream_pool *pool, struct upstream_query *uq)
{
	uq->waiting = 1;
	TAILQ_INSERT_HEAD(&pool->waiting[uq->bulk], uq, wait);
}

static void pool_unwait(struct upstream_pool *pool, struct upstream_query *uq)
{
	TAILQ_REMOVE(&pool->waiting[uq->bulk], uq, wait);
	uq->waiting = 0;
}

static void pool_wait(struct upstream_pool *pool, struct upstream_query *uq)
{
	uq->waiting = 1;
	TAILQ_INSERT_TAIL(&pool->waiting[uq->bulk], uq, wait);
}

/*
 * pool_dispatch - send uq, or complete it (no usable upstream, deadline, attempts used up),
 * or park it in the wait list. Returns true only in the last case: after a completion uq may
 * already be freed, so the caller must not look at it.
 */
static bool pool_dispatch(struct upstream_pool *pool, struct upstream_query *uq)
{
	struct upstream *up;
	struct upconn *c;
	bool local;
	int r;

	for (;;) {
		if (uq->attempts >= UPQ_MAX_ATTEMPTS) {
			uq->complete(uq, NULL, NULL, -EIO);
			return false;
		}
		if (loop_now_ms(pool->loop) >= uq->deadline_ms) {
			uq->complete(uq, NULL, NULL, -ETIMEDOUT);
			return false;
		}
		up = pool_pick(pool, uq);
		if (!up) {
			uq->complete(uq, NULL, NULL, -ENETUNREACH);
			return false;
		}
		c = upstream_conn(up, &r, &local);
		if (r < 0 && local) {
			/* every upstream would fail alike: SERVFAIL now, nobody backs off */
			uq->complete(uq, NULL, NULL, r);
			return false;
		}
		if (r < 0) {
			upstream_mark_failed(up, r);
			uq->tried |= 1u << up->idx;
			continue;
		}
		if (!c) {
			/* every connection is full: first free slot takes it */
			up->wait_seq++;
			pool_wait(pool, uq);
			return true;
		}
		r = pool_dispatch_to(c, uq);
		if (r == -ENOBUFS || r == -ENOMEM) {
			pool_wait(pool, uq); /* its output buffer is full: wait for it to drain */
			return true;
		}
		if (r < 0) {
			uq->complete(uq, NULL, NULL, r); /* cannot be framed (too large to pad) */
			return false;
		}
		return false;
	}
}

void upstream_pool_retry(struct upstream_pool *pool)
{
	for (size_t i = 0; i < pool->n; i++)
		atomic_store_explicit(&pool->ups[i].down_until_ms, 0, memory_order_relaxed);
}

void upstream_pool_submit(struct upstream_pool *pool, struct upstream_query *uq)
{
	uq->conn = NULL;
	uq->waiting = 0;
	uq->tried = 0;
	uq->attempts = 0;
	uq->resends = 0;
	uq->probe = 0;
	uq->error_resent = 0;
	uq->abandoned = 0;
	uq->answered_by = NULL;
	pool_dispatch(pool, uq);
}

void upstream_query_cancel(struct upstream_pool *pool, struct upstream_query *uq)
{
	struct upconn *c = uq->conn;

	if (uq->waiting) {
		pool_unwait(pool, uq);
		return;
	}
	if (!c)
		return;
	slot_release(c, uq);
	conn_arm(c);
	/* The freed slot goes to a waiting query at the next I/O on any connection (this may
	 * run deep inside a completion, where dispatching more would re-enter the caller). */
}

bool upstream_query_abandon(struct upstream_pool *pool, struct upstream_query *uq)
{
	struct upconn *c = uq->conn;

	if (!c || c->state != UC_READY || uq->probe) {
		upstream_query_cancel(pool, uq); /* waiting, done, or not out yet */
		return false;
	}
	uq->abandoned = 1;
	stats_add(&pool->stats->upstream_abandoned, 1);
	return true;
}
