/*
 * ddr.c - --upstream asked: verified Discovery of Designated Resolvers (RFC 9462); see ddr.h
 * for the contract.
 *
 * Invariants:
 * - Each asked address has at most one entry; each entry at most one ddr_pool (e->dp), whose
 *   back pointer dp->e names it. A retired ddr_pool (dp->e NULL) sits on d->retired until its
 *   pool is idle, then is freed by the tick: never inside a callback of its own pool, so a
 *   query completing on it can still call ddr_done.
 * - Queries are routed to a ddr_pool only in state DDR_VERIFIED: its first connection
 *   authenticated the designated resolver by name and by the asked address (tls.c).
 * - The worker thread alone changes the table; it holds d->lock around every change of the
 *   list or of an entry's state or pool, and ddr_snapshot (another thread) reads under it.
 * - A ddr_cfg lives while d or a ddr_pool refers to it: pools point into it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dotgw/ddr.h"
#include "dotgw/log.h"
#include "dotgw/svcb.h"

#define DDR_ASK_MS  1000 /* an SVCB question unanswered this long is sent again... */
#define DDR_ASK_MAX 2	 /* ...this many times in all */
#define DDR_TICK_MS 250

enum ddr_state {
	DDR_ASKING,    /* the SVCB question is out: queries go to the configured upstreams */
	DDR_VERIFYING, /* a DoT designation came: its pool's first connection must authenticate */
	DDR_VERIFIED,  /* queries go to the designated resolver */
	DDR_NONE,      /* no DoT designation, or no answer: configured upstreams until next_ms */
	DDR_REJECTED,  /* the designated resolver did not authenticate as the asked address */
	DDR_FAILED,    /* dropped after DDR_MAX_FAILS failed queries in a row */
};

static const char *const ddr_state_names[] = {"asking", "verifying", "verified",
					      "none",	"rejected",  "failed"};

/* The pool settings of one configuration (the pools point into it), reference counted. */
struct ddr_cfg {
	struct config cfg;
	unsigned int refs;
};

struct ddr_entry;

struct ddr_pool {
	struct ddr *d;
	struct ddr_entry *e; /* NULL once retired */
	struct ddr_cfg *dc;
	struct upstream_pool *pool;
	struct upstream_config u;    /* the designated resolver: address, name, and asked address */
	struct upstream_query probe; /* the first query, whose answer verifies */
	bool probing;
	uint64_t probe_deadline_ms;
	uint64_t ttl_ms; /* how long the designation holds once verified */
	struct dns_msg probe_m;
	uint8_t probe_msg[SVCB_QUERY_LEN];
	TAILQ_ENTRY(ddr_pool) link; /* in d->retired, once retired */
};

struct ddr_entry {
	TAILQ_ENTRY(ddr_entry) lru; /* most recently used first */
	union sockaddr_any asked;   /* port 53 */
	enum ddr_state state;
	bool refreshing; /* DDR_VERIFIED and the SVCB question out again */
	uint8_t tries;
	uint16_t qid;
	uint64_t ask_until_ms; /* while asking: send again or give up then */
	uint64_t next_ms;      /* ask again from then on */
	unsigned int fails;    /* queries failed in a row on dp */
	unsigned int backoff_s;
	struct ddr_pool *dp;
	_Atomic uint64_t queries, failures;
	char text[ADDR_TEXT_MAX]; /* the asked address, without port */
};

struct ddr {
	struct loop *loop;
	struct stats *stats;
	const struct config *cfg;
	struct ddr_cfg *dc;
	struct upstream_pool *like;
	pthread_mutex_t lock;
	TAILQ_HEAD(ddr_lru, ddr_entry) lru;
	size_t n;
	TAILQ_HEAD(, ddr_pool) retired;
	struct ddr_sock {
		struct ddr *d;
		struct loop_watch watch;
	} sock[2]; /* SVCB questions over UDP: IPv4, IPv6 (fd -1: not open) */
	struct loop_timer tick;
	struct log_ratelimit rl;
	uint8_t buf[DNS_MAX_MSG];
};

static void ddr_pool_retire(struct ddr *d, struct ddr_pool *dp);
static void ddr_ask(struct ddr *d, struct ddr_entry *e);

static struct ddr_cfg *ddr_cfg_new(const struct config *cfg)
{
	struct ddr_cfg *dc = malloc(sizeof(*dc));

	if (!dc)
		return NULL;
	/* what upstream.c and tls.c read of a configuration; the rest stays at its default */
	config_init(&dc->cfg);
	/* a pool per worker outside the budget the workers share: as large as a worker's share */
	dc->cfg.pool_size = cfg->pool_floor ? cfg->pool_floor : cfg->pool_size;
	dc->cfg.conn_inflight = cfg->conn_inflight;
	dc->cfg.idle_ms = cfg->idle_ms;
	dc->cfg.stall_ms = cfg->stall_ms;
	dc->cfg.standby_s = cfg->standby_s;
	dc->cfg.tcp_fastopen = cfg->tcp_fastopen;
	dc->cfg.padding = cfg->padding;
	dc->cfg.upstream_choice = cfg->upstream_choice;
	dc->cfg.bypass_mark = cfg->bypass_mark;
	dc->cfg.timeout_ms = cfg->timeout_ms;
	dc->cfg.tls_opportunistic = false; /* verified discovery or nothing */
	dc->refs = 1;
	return dc;
}

static void ddr_cfg_put(struct ddr_cfg *dc)
{
	if (dc && --dc->refs == 0)
		free(dc);
}

/* ddr_arm - make sure the tick runs: something is asked, verified or retired. */
static void ddr_arm(struct ddr *d)
{
	if (!loop_timer_armed(&d->tick))
		loop_timer_set(d->loop, &d->tick, loop_now_ms(d->loop) + DDR_TICK_MS);
}

static uint64_t clamp_ttl_ms(uint32_t ttl)
{
	if (ttl < DDR_TTL_MIN)
		ttl = DDR_TTL_MIN;
	if (ttl > DDR_TTL_MAX)
		ttl = DDR_TTL_MAX;
	return (uint64_t)ttl * 1000;
}

/* backoff_ms - the next back-off of e: DDR_BACKOFF_MIN, doubled each time, at most _MAX. */
static uint64_t backoff_ms(struct ddr_entry *e)
{
	unsigned int s = e->backoff_s ? e->backoff_s * 2 : DDR_BACKOFF_MIN;

	e->backoff_s = s > DDR_BACKOFF_MAX ? DDR_BACKOFF_MAX : s;
	return (uint64_t)e->backoff_s * 1000;
}

/* ddr_set - e's state and pool change (under the lock, for ddr_snapshot). */
static void ddr_set(struct ddr *d, struct ddr_entry *e, enum ddr_state st, struct ddr_pool *dp)
{
	struct ddr_pool *old = e->dp;

	pthread_mutex_lock(&d->lock);
	e->state = st;
	e->dp = dp;
	if (dp)
		dp->e = e;
	pthread_mutex_unlock(&d->lock);
	if (old && old != dp)
		ddr_pool_retire(d, old);
}

/* --- the designated resolvers' pools --------------------------------------------------- */

static void ddr_pool_free(struct ddr_pool *dp)
{
	upstream_pool_free(dp->pool);
	ddr_cfg_put(dp->dc);
	free(dp);
}

/* ddr_pool_retire - dp serves no new query; it is freed once its pool has drained. */
static void ddr_pool_retire(struct ddr *d, struct ddr_pool *dp)
{
	if (dp->probing) {
		upstream_query_cancel(dp->pool, &dp->probe);
		dp->probing = false;
	}
	dp->e = NULL;
	TAILQ_INSERT_TAIL(&d->retired, dp, link);
	ddr_arm(d);
}

/* ddr_reject - e's designation in dp did not verify (why: for the log). */
static void ddr_reject(struct ddr *d, struct ddr_entry *e, struct ddr_pool *dp, const char *why)
{
	uint64_t b = backoff_ms(e);

	log_warn("ddr: %s designates %s: REJECTED (%s): verified discovery (RFC 9462 4.2) needs "
		 "a certificate valid for %s that also covers %s; queries asked of %s go to the "
		 "configured upstreams (asked again in %llu s)",
		 e->text, dp->u.text, why, dp->u.auth_name, e->text, e->text,
		 (unsigned long long)(b / 1000));
	e->next_ms = loop_now_ms(d->loop) + b;
	ddr_set(d, e, DDR_REJECTED, NULL);
}

/* ddr_probe_done - the first query over a new designated resolver's pool ended. */
static void ddr_probe_done(struct upstream_query *uq, const uint8_t *answer,
			   const struct dns_msg *r, int err)
{
	struct ddr_pool *dp = container_of(uq, struct ddr_pool, probe);
	struct ddr_entry *e = dp->e;
	struct ddr *d = dp->d;

	(void)answer;
	(void)r;
	dp->probing = false;
	if (!e)
		return;
	if (err) {
		ddr_reject(d, e, dp,
			   err == -ETIMEDOUT ? "no answer" : "no authenticated connection");
		return;
	}
	/* an answer came over a connection that authenticated: name and address both held */
	log_info("ddr: %s designates %s: verified; queries asked of %s go there", e->text,
		 dp->u.text, e->text);
	e->fails = 0;
	e->backoff_s = 0;
	e->next_ms = loop_now_ms(d->loop) + dp->ttl_ms;
	ddr_set(d, e, DDR_VERIFIED, dp);
}

/*
 * ddr_designated - the upstream that dot, designated by e's address, describes: the hint of
 * the asked address's family that is the asked address itself, else the first hint of that
 * family, else the asked address; the target as the name to verify, and the asked address
 * as the one the certificate must also cover.
 */
static void ddr_designated(const struct ddr_entry *e, const struct svcb_dot *dot,
			   struct upstream_config *u)
{
	union sockaddr_any a = e->asked;
	const uint8_t *own = addr_bytes(&e->asked);
	char ip[ADDR_TEXT_MAX];
	bool v6 = a.sa.sa_family == AF_INET6;
	size_t alen = v6 ? 16 : 4, n = v6 ? dot->n_v6 : dot->n_v4;

	for (size_t i = 0; i < n; i++) {
		const uint8_t *h = v6 ? dot->v6[i] : dot->v4[i];

		if (memcmp(h, own, alen) == 0 || i + 1 == n) {
			memcpy(v6 ? (void *)&a.sin6.sin6_addr : (void *)&a.sin.sin_addr,
			       memcmp(h, own, alen) == 0 ? h : (v6 ? dot->v6[0] : dot->v4[0]),
			       alen);
			break;
		}
	}
	addr_set_port(&a, dot->port);
	memset(u, 0, sizeof(*u));
	memcpy(&u->addr, &a, addr_len(&a));
	u->addrlen = addr_len(&a);
	snprintf(u->auth_name, sizeof(u->auth_name), "%s", dot->target);
	memcpy(u->also_ip, own, alen);
	u->also_ip_len = (uint8_t)alen;
	addr_text(&a, ip, sizeof(ip));
	/* "ADDR@PORT#NAME" like the configured upstreams (addr_text writes ADDR:PORT) */
	{
		char *colon = strrchr(ip, ':');

		if (colon)
			*colon = '@';
	}
	if (snprintf(u->text, sizeof(u->text), "%s#%s", ip, dot->target) >= (int)sizeof(u->text))
		u->text[sizeof(u->text) - 2] = '~'; /* a very long name, cut for the logs */
}

static bool upstream_same(const struct upstream_config *a, const struct upstream_config *b)
{
	return a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0 &&
	       strcmp(a->auth_name, b->auth_name) == 0;
}

/* ddr_verify - e's address designates dot: verify it over a pool of its own. */
static void ddr_verify(struct ddr *d, struct ddr_entry *e, const struct svcb_dot *dot)
{
	struct upstream_config u;
	struct ddr_pool *dp;
	int r;

	ddr_designated(e, dot, &u);
	if (e->state == DDR_VERIFIED && e->dp && upstream_same(&e->dp->u, &u)) {
		e->next_ms = loop_now_ms(d->loop) + clamp_ttl_ms(dot->ttl);
		log_debug("ddr: %s designates %s still", e->text, u.text);
		return;
	}
	dp = calloc(1, sizeof(*dp));
	if (!dp) {
		r = -ENOMEM;
		goto out_fail;
	}
	dp->d = d;
	dp->u = u;
	dp->dc = d->dc;
	d->dc->refs++;
	r = upstream_pool_new_single(&dp->pool, d->loop, &dp->dc->cfg, d->stats, &dp->u, d->like);
	if (r < 0) {
		ddr_cfg_put(dp->dc);
		free(dp);
		goto out_fail;
	}
	dp->ttl_ms = clamp_ttl_ms(dot->ttl);
	log_info("ddr: %s designates %s (SVCB priority %u, TTL %u): verifying", e->text, u.text,
		 dot->priority, dot->ttl);
	ddr_set(d, e, DDR_VERIFYING, dp);
	/* the probe: the SVCB question again, now over TLS; only the handshake matters */
	dp->probe_m.len = svcb_build_query(dp->probe_msg, 0);
	if (dns_msg_parse(&dp->probe_m, dp->probe_msg, dp->probe_m.len) < 0) {
		r = -EINVAL;
		goto out_fail;
	}
	dp->probe.msg = dp->probe_msg;
	dp->probe.len = dp->probe_m.len;
	dp->probe.m = &dp->probe_m;
	dp->probe_deadline_ms = loop_now_ms(d->loop) + d->cfg->timeout_ms;
	dp->probe.deadline_ms = dp->probe_deadline_ms;
	dp->probe.complete = ddr_probe_done;
	dp->probing = true;
	ddr_arm(d);
	upstream_pool_submit(dp->pool, &dp->probe); /* may complete at once */
	return;

out_fail:
	log_warn("ddr: %s designates %s: cannot set up a pool for it: %s", e->text, u.text,
		 strerror(-r));
	e->next_ms = loop_now_ms(d->loop) + backoff_ms(e);
	ddr_set(d, e, DDR_NONE, NULL);
}

/* --- the SVCB questions ------------------------------------------------------------------ */

/* ddr_none - e's address designates no DoT resolver (or did not answer: why). */
static void ddr_none(struct ddr *d, struct ddr_entry *e, uint64_t for_ms, const char *why)
{
	if (e->state == DDR_VERIFIED && e->refreshing && !strcmp(why, "no answer")) {
		/* a designation that verified stays while its address is silent, for a while */
		e->refreshing = false;
		e->next_ms = loop_now_ms(d->loop) + DDR_BACKOFF_MIN * 1000ull;
		return;
	}
	log_info("ddr: %s: %s; its queries go to the configured upstreams (asked again in "
		 "%llu s)",
		 e->text, why, (unsigned long long)(for_ms / 1000));
	e->refreshing = false;
	e->next_ms = loop_now_ms(d->loop) + for_ms;
	ddr_set(d, e, DDR_NONE, NULL);
}

/* ddr_answer - an SVCB answer (buf, n octets) for e arrived. */
static void ddr_answer(struct ddr *d, struct ddr_entry *e, const uint8_t *buf, size_t n)
{
	struct svcb_dot dot;
	struct dns_msg m;
	uint32_t ttl;
	int r;

	if (dns_msg_parse(&m, buf, n) < 0 || m.id != e->qid)
		return;
	if (m.flags & DNS_FLAG_TC) {
		ddr_none(d, e, clamp_ttl_ms(0), "truncated SVCB answer");
		return;
	}
	if ((m.flags & DNS_RCODE_MASK) == DNS_RCODE_NXDOMAIN) {
		e->backoff_s = 0;
		ddr_none(d, e, clamp_ttl_ms(600), "no DoT designation (NXDOMAIN)");
		return;
	}
	if ((m.flags & DNS_RCODE_MASK) != 0) {
		ddr_none(d, e, backoff_ms(e), "SVCB question refused or failed");
		return;
	}
	r = svcb_dot_pick(buf, &m, &dot, &ttl);
	if (r < 0)
		return; /* not an answer to our question: wait for the next */
	e->backoff_s = 0;
	if (r == 0) {
		ddr_none(d, e, clamp_ttl_ms(ttl == UINT32_MAX ? 600 : ttl), "no DoT designation");
		return;
	}
	e->refreshing = false;
	ddr_verify(d, e, &dot);
}

static struct ddr_entry *ddr_find(struct ddr *d, const union sockaddr_any *a)
{
	struct ddr_entry *e;

	TAILQ_FOREACH(e, &d->lru, lru)
		if (e->asked.sa.sa_family == a->sa.sa_family &&
		    memcmp(addr_bytes(&e->asked), addr_bytes(a),
			   a->sa.sa_family == AF_INET6 ? 16 : 4) == 0)
			return e;
	return NULL;
}

static void ddr_readable(struct loop_watch *w, uint32_t revents)
{
	struct ddr_sock *ds = container_of(w, struct ddr_sock, watch);
	struct ddr *d = ds->d;

	(void)revents;
	for (int i = 0; i < 64; i++) {
		union sockaddr_any from;
		socklen_t fl = sizeof(from);
		struct ddr_entry *e;
		ssize_t n = recvfrom(w->fd, d->buf, sizeof(d->buf), MSG_DONTWAIT, &from.sa, &fl);

		if (n < 0)
			return; /* EAGAIN; ICMP errors are not reported on this socket */
		if (addr_port(&from) != 53 || !(e = ddr_find(d, &from)) ||
		    !(e->state == DDR_ASKING || e->refreshing))
			continue;
		ddr_answer(d, e, d->buf, (size_t)n);
	}
}

/* ddr_sock_open - the UDP socket of family, with the bypass mark; 0 or -errno. */
static int ddr_sock_open(struct ddr *d, int family)
{
	struct ddr_sock *ds = &d->sock[family == AF_INET6];
	uint32_t mark = d->cfg->bypass_mark;
	int fd, r;

	if (ds->watch.fd >= 0)
		return 0;
	fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* ours, like every socket of dotgw: the capture rules never take it */
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	ds->d = d;
	ds->watch.fd = fd;
	ds->watch.cb = ddr_readable;
	r = loop_watch_add(d->loop, &ds->watch, EPOLLIN);
	if (r < 0) {
		close(fd);
		ds->watch.fd = -1;
	}
	return r;
}

/* ddr_send - the SVCB question to e's address, with a new id. */
static void ddr_send(struct ddr *d, struct ddr_entry *e)
{
	uint8_t q[SVCB_QUERY_LEN];
	uint16_t id;
	size_t n;
	int r;

	if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != sizeof(id))
		id = (uint16_t)(loop_now_ms(d->loop) * 2654435761u >> 16);
	e->qid = id;
	e->tries++;
	e->ask_until_ms = loop_now_ms(d->loop) + DDR_ASK_MS;
	ddr_arm(d);
	n = svcb_build_query(q, id);
	r = ddr_sock_open(d, e->asked.sa.sa_family);
	if (r == 0 && sendto(d->sock[e->asked.sa.sa_family == AF_INET6].watch.fd, q, n, 0,
			     &e->asked.sa, addr_len(&e->asked)) < 0)
		r = -errno;
	if (r < 0)
		log_ratelimited(&d->rl, LOG_LVL_WARN, "ddr: asking %s for its designation: %s",
				e->text, strerror(-r));
}

/* ddr_ask - ask e's address for its designation (again). */
static void ddr_ask(struct ddr *d, struct ddr_entry *e)
{
	e->tries = 0;
	if (e->state == DDR_VERIFIED)
		e->refreshing = true; /* its pool serves on meanwhile */
	else
		ddr_set(d, e, DDR_ASKING, NULL);
	log_debug("ddr: asking %s for _dns.resolver.arpa SVCB", e->text);
	ddr_send(d, e);
}

/* ddr_tick - questions unanswered, probes overdue, retired pools drained. */
static void ddr_tick(struct loop_timer *t)
{
	struct ddr *d = container_of(t, struct ddr, tick);
	uint64_t now = loop_now_ms(d->loop);
	struct ddr_entry *e, *next_e;
	struct ddr_pool *dp, *next_dp;
	bool busy = false;

	for (e = TAILQ_FIRST(&d->lru); e; e = next_e) {
		next_e = TAILQ_NEXT(e, lru); /* entries stay; only their pools may retire */
		if (e->state == DDR_ASKING || e->refreshing) {
			if (now < e->ask_until_ms)
				busy = true;
			else if (e->tries < DDR_ASK_MAX)
				ddr_send(d, e);
			else
				ddr_none(d, e, backoff_ms(e), "no answer");
		} else if (e->state == DDR_VERIFYING && e->dp && e->dp->probing) {
			if (now >= e->dp->probe_deadline_ms)
				ddr_reject(d, e, e->dp, "no answer");
			else
				busy = true;
		}
	}
	for (dp = TAILQ_FIRST(&d->retired); dp; dp = next_dp) {
		next_dp = TAILQ_NEXT(dp, link);
		if (upstream_pool_idle(dp->pool)) {
			TAILQ_REMOVE(&d->retired, dp, link);
			ddr_pool_free(dp);
		} else {
			busy = true;
		}
	}
	if (busy || !TAILQ_EMPTY(&d->retired))
		loop_timer_set(d->loop, &d->tick, now + DDR_TICK_MS);
}

/* ddr_entry_new - an entry for address a (port 53), the least recently used one evicted
 * when the table is full. NULL without memory. */
static struct ddr_entry *ddr_entry_new(struct ddr *d, const union sockaddr_any *a)
{
	struct ddr_entry *e = calloc(1, sizeof(*e)), *old = NULL;
	char buf[ADDR_TEXT_MAX];

	if (!e)
		return NULL;
	memset(&e->asked, 0, sizeof(e->asked));
	e->asked.sa.sa_family = a->sa.sa_family;
	if (a->sa.sa_family == AF_INET6) {
		e->asked.sin6.sin6_addr = a->sin6.sin6_addr;
		e->asked.sin6.sin6_scope_id = a->sin6.sin6_scope_id;
	} else {
		e->asked.sin.sin_addr = a->sin.sin_addr;
	}
	addr_set_port(&e->asked, 53);
	addr_text(&e->asked, buf, sizeof(buf));
	/* without the port: "192.0.2.1:53" -> "192.0.2.1", "[2001:db8::1]:53" -> "2001:db8::1" */
	if (a->sa.sa_family == AF_INET6) {
		*strrchr(buf, ']') = 0;
		snprintf(e->text, sizeof(e->text), "%s", buf + 1);
	} else {
		*strrchr(buf, ':') = 0;
		snprintf(e->text, sizeof(e->text), "%s", buf);
	}
	e->state = DDR_ASKING;
	if (d->n >= d->cfg->asked_max)
		old = TAILQ_LAST(&d->lru, ddr_lru);
	pthread_mutex_lock(&d->lock);
	if (old) {
		TAILQ_REMOVE(&d->lru, old, lru);
		d->n--;
	}
	TAILQ_INSERT_HEAD(&d->lru, e, lru);
	d->n++;
	pthread_mutex_unlock(&d->lock);
	if (old) {
		log_debug("ddr: table full (--asked-max %u): %s forgotten", d->cfg->asked_max,
			  old->text);
		if (old->dp)
			ddr_pool_retire(d, old->dp);
		free(old);
	}
	return e;
}

/* --- the interface ------------------------------------------------------------------------ */

struct ddr_pool *ddr_route(struct ddr *d, const union sockaddr_any *asked, const char **via)
{
	struct ddr_entry *e;
	uint64_t now;

	if (!d->cfg->upstream_asked)
		return NULL;
	now = loop_now_ms(d->loop);
	e = ddr_find(d, asked);
	if (!e) {
		e = ddr_entry_new(d, asked);
		if (!e)
			return NULL;
		ddr_ask(d, e);
		return NULL;
	}
	if (e != TAILQ_FIRST(&d->lru)) {
		pthread_mutex_lock(&d->lock);
		TAILQ_REMOVE(&d->lru, e, lru);
		TAILQ_INSERT_HEAD(&d->lru, e, lru);
		pthread_mutex_unlock(&d->lock);
	}
	switch (e->state) {
	case DDR_VERIFIED:
		if (now >= e->next_ms && !e->refreshing)
			ddr_ask(d, e);
		stats_add(&e->queries, 1);
		*via = e->dp->u.text;
		return e->dp;
	case DDR_NONE:
	case DDR_REJECTED:
	case DDR_FAILED:
		if (now >= e->next_ms)
			ddr_ask(d, e);
		return NULL;
	default:
		return NULL;
	}
}

struct upstream_pool *ddr_pool_upstream(const struct ddr_pool *dp)
{
	return dp->pool;
}

const struct sockaddr *ddr_pool_addr(const struct ddr_pool *dp)
{
	return (const struct sockaddr *)&dp->u.addr;
}

void ddr_done(struct ddr_pool *dp, int err)
{
	struct ddr_entry *e = dp->e;
	struct ddr *d = dp->d;
	uint64_t b;

	if (!e)
		return; /* retired: its failures no longer count */
	if (!err) {
		e->fails = 0;
		return;
	}
	stats_add(&e->failures, 1);
	if (++e->fails < DDR_MAX_FAILS)
		return;
	b = backoff_ms(e);
	log_warn("ddr: %s: designated resolver %s failed %u queries in a row (%s): dropped; "
		 "queries asked of %s go to the configured upstreams (asked again in %llu s)",
		 e->text, dp->u.text, e->fails, strerror(-err), e->text,
		 (unsigned long long)(b / 1000));
	e->refreshing = false;
	e->next_ms = loop_now_ms(d->loop) + b;
	ddr_set(d, e, DDR_FAILED, NULL);
}

size_t ddr_snapshot(struct ddr *d, struct ddr_snapshot *out, size_t max)
{
	struct ddr_entry *e;
	size_t n = 0;

	pthread_mutex_lock(&d->lock);
	TAILQ_FOREACH(e, &d->lru, lru) {
		if (n == max)
			break;
		snprintf(out[n].asked, sizeof(out[n].asked), "%s", e->text);
		snprintf(out[n].designated, sizeof(out[n].designated), "%s",
			 e->dp ? e->dp->u.text : "");
		out[n].state = ddr_state_names[e->state];
		out[n].queries = stats_get(&e->queries);
		out[n].failures = stats_get(&e->failures);
		n++;
	}
	pthread_mutex_unlock(&d->lock);
	return n;
}

int ddr_new(struct ddr **out, struct loop *loop, const struct config *cfg, struct stats *stats,
	    struct upstream_pool *like)
{
	struct ddr *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->dc = ddr_cfg_new(cfg);
	if (!d->dc) {
		free(d);
		return -ENOMEM;
	}
	d->loop = loop;
	d->stats = stats;
	d->cfg = cfg;
	d->like = like;
	pthread_mutex_init(&d->lock, NULL);
	TAILQ_INIT(&d->lru);
	TAILQ_INIT(&d->retired);
	for (int i = 0; i < 2; i++)
		d->sock[i].watch.fd = -1;
	loop_timer_init(&d->tick, ddr_tick);
	*out = d;
	return 0;
}

/* ddr_forget_all - every entry goes; their pools drain on d->retired. */
static void ddr_forget_all(struct ddr *d)
{
	struct ddr_entry *e;

	while ((e = TAILQ_FIRST(&d->lru))) {
		pthread_mutex_lock(&d->lock);
		TAILQ_REMOVE(&d->lru, e, lru);
		d->n--;
		pthread_mutex_unlock(&d->lock);
		if (e->dp)
			ddr_pool_retire(d, e->dp);
		free(e);
	}
}

void ddr_reload(struct ddr *d, const struct config *cfg, struct upstream_pool *like)
{
	struct ddr_cfg *dc = ddr_cfg_new(cfg);

	ddr_forget_all(d);
	if (dc) {
		ddr_cfg_put(d->dc);
		d->dc = dc;
	} else {
		log_warn("reload: no memory for --upstream asked's settings: the old ones stay");
	}
	d->cfg = cfg;
	d->like = like;
}

void ddr_free(struct ddr *d)
{
	struct ddr_pool *dp;

	if (!d)
		return;
	ddr_forget_all(d);
	while ((dp = TAILQ_FIRST(&d->retired))) {
		TAILQ_REMOVE(&d->retired, dp, link);
		ddr_pool_free(dp);
	}
	loop_timer_cancel(d->loop, &d->tick);
	for (int i = 0; i < 2; i++) {
		if (d->sock[i].watch.fd < 0)
			continue;
		loop_watch_del(d->loop, &d->sock[i].watch);
		close(d->sock[i].watch.fd);
	}
	ddr_cfg_put(d->dc);
	pthread_mutex_destroy(&d->lock);
	free(d);
}
