/*
 * upstream.h - DNS-over-TLS (RFC 7858) to the configured upstreams.
 *
 * Each upstream has a pool of persistent TLS connections (--pool-size at most), opened on
 * demand as load needs them and closed when idle, with many queries pipelined on each: a window
 * from --conn-inflight up to the connection's measured bandwidth-delay product. Query ids are
 * rewritten per connection (id = generation << 10 | slot), answers are matched out of order by
 * id and checked against the question. Queries carry edns-tcp-keepalive and RFC 8467 padding;
 * answers lose both before they go back. Only connections that authenticated (chain and name,
 * or address, and SPKI pins) are used, unless --tls-auth opportunistic says otherwise.
 * A connection that stops answering is probed with a query of its own and closed when the
 * probe gets no answer either; a failed connection puts its upstream into exponential back-off.
 * Either way its queries are sent again, to another connection or upstream, while their
 * deadline allows. Upstreams are chosen by --upstream-policy among the usable ones.
 */
#ifndef DOTGW_UPSTREAM_H
#define DOTGW_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "dotgw/config.h"
#include "dotgw/dns.h"
#include "dotgw/loop.h"
#include "dotgw/stats.h"

struct upstream_pool;
struct upstream_snapshot;
struct upconn;
struct tls_ctx;
struct tls_conn;

/*
 * A query handed to the pool. The caller fills the public part and keeps the struct and msg
 * alive until complete() runs or upstream_query_cancel() returns.
 */
struct upstream_query {
	const uint8_t *msg; /* the query as the client sent it (its id is replaced) */
	size_t len;
	const struct dns_msg *m; /* the parsed query: answers must carry its question */
	uint64_t deadline_ms;	 /* no new attempt is started after it */
	uint32_t allowed;	 /* bit i: the i-th upstream may be used; 0: any */
	const char *answered_by; /* set before complete(): the upstream's name, or NULL */
	/* the caller's: its client is past its default share; while queries wait for room,
	 * this one waits behind every one that is not bulk (set before submitting, kept) */
	bool bulk;
	/*
	 * Called exactly once, unless cancelled: with the answer (its id is the upstream one;
	 * the buffer is valid only during the call), its parsed view r and err 0, or with
	 * answer and r NULL and -ENETUNREACH (no usable upstream), -ETIMEDOUT (deadline), -EIO
	 * (attempts used up).
	 */
	void (*complete)(struct upstream_query *uq, const uint8_t *answer, const struct dns_msg *r,
			 int err);

	/* private to upstream.c */
	struct upconn *conn;
	TAILQ_ENTRY(upstream_query) wait; /* the pool's wait list, while waiting is set */
	uint64_t sent_us;
	uint32_t tried; /* upstreams that failed this query, by index */
	uint16_t id;
	uint8_t attempts;
	uint8_t resends; /* sends again after clean closes, which do not count as attempts */
	uint8_t waiting;
	uint8_t probe;	      /* the pool's own health probe: complete() is never called */
	uint8_t error_resent; /* sent to another upstream after a transport error answer */
	uint8_t abandoned;    /* upstream_query_abandon: its slot stays taken until it ends */
};

/*
 * upstream_pool_new - the pool of cfg's upstreams over TLS (tls.h: trust anchors from
 * cfg->ca_file or the system store; a file that cannot be loaded is an error), no connection
 * open yet. Logs what went wrong. Returns 0 or -errno.
 */
int upstream_pool_new(struct upstream_pool **out, struct loop *loop, const struct config *cfg,
		      struct stats *stats);
/*
 * The byte stream under each connection, as tls.h describes it: tls.c in the daemon
 * (upstream_pool_new), a fake in the unit test. A transport may define its own connection and
 * context and convert their pointers to and from these opaque types.
 */
/* In the up index given to a transport's open: open the upstream's DoH fallback instead. */
#define UPSTREAM_FALLBACK ((size_t)1 << 16)

struct upstream_transport {
	int (*ctx_new)(struct tls_ctx **out, const struct config *cfg);
	/* a context for the one upstream u sharing like's trust anchors (NULL: not offered) */
	int (*ctx_share)(struct tls_ctx **out, const struct config *cfg, const struct tls_ctx *like,
			 const struct upstream_config *u);
	void (*ctx_free)(struct tls_ctx *ctx);
	int (*open)(struct tls_ctx *ctx, size_t up, struct tls_conn **out, bool *local);
	int (*fd)(const struct tls_conn *t);
	int (*handshake)(struct tls_conn *t, bool *want_write, bool *local);
	int (*write)(struct tls_conn *t, const uint8_t *buf, size_t len, bool *want_write);
	int (*read)(struct tls_conn *t, uint8_t *buf, size_t len, bool *want_write);
	bool (*drained)(const struct tls_conn *t);
	bool (*resumed)(const struct tls_conn *t);
	bool (*unverified)(const struct tls_conn *t);
	void (*close)(struct tls_conn *t, bool clean);
	/*
	 * Optional: a probe of the transport's own (HTTP/2 PING) instead of the DNS one. ping:
	 * 1 sent, 0 not offered on this connection, -errno; pong: its answer came since the last
	 * call.
	 */
	int (*ping)(struct tls_conn *t);
	bool (*pong)(struct tls_conn *t);
	/*
	 * Optional: is the answer with id just read a stand-in SERVFAIL for a query the
	 * transport failed (a DoH stream's status or body)? Each such answer is reported once.
	 */
	bool (*failed)(struct tls_conn *t, uint16_t id);
	/* Optional: add the transport's own counters of ctx's upstream up to *s (doh_*). */
	void (*snapshot)(const struct tls_ctx *ctx, size_t up, struct upstream_snapshot *s);
};

/*
 * upstream_pool_new_transport - upstream_pool_new over another transport, tr, which must
 * outlive the pool.
 */
int upstream_pool_new_transport(struct upstream_pool **out, struct loop *loop,
				const struct config *cfg, struct stats *stats,
				const struct upstream_transport *tr);
/*
 * upstream_pool_new_single - a pool of one upstream u that is not among cfg's (a resolver
 * found at run time: ddr.c), with cfg's other settings, over like's transport and sharing its
 * TLS context (trust anchors). u, cfg and like's transport must outlive the pool; like need
 * not. 0 or -errno (-EOPNOTSUPP: the transport cannot share).
 */
int upstream_pool_new_single(struct upstream_pool **out, struct loop *loop,
			     const struct config *cfg, struct stats *stats,
			     const struct upstream_config *u, const struct upstream_pool *like);
/* upstream_pool_free - close every connection; queries still in flight are not completed. */
void upstream_pool_free(struct upstream_pool *pool);

/* upstream_pool_idle - nothing in flight and nothing waiting: the pool may be freed. */
bool upstream_pool_idle(const struct upstream_pool *pool);

#define UPSTREAM_RTT_BUCKETS 12

/* The latency buckets of upstream_snapshot.rtt (upper bounds in milliseconds; the last is +Inf). */
extern const unsigned int upstream_rtt_bounds_ms[UPSTREAM_RTT_BUCKETS - 1];

/* What one pool knows of one upstream, for metrics (added up over the workers). */
/* The transports of struct upstream_snapshot's per-transport counters. */
enum upstream_tr { UPSTREAM_TR_DOT, UPSTREAM_TR_DOH, UPSTREAM_TR_N };

struct upstream_snapshot {
	uint64_t handshakes, resumed, failures, answers;
	/*
	 * The same by transport (a DoT upstream's DoH fallback is its DoH), and the queries sent
	 * over each; can[t]: the upstream may use transport t (DoT, its fallback, DoH only).
	 */
	uint64_t tr_queries[UPSTREAM_TR_N], tr_answers[UPSTREAM_TR_N];
	uint64_t tr_handshakes[UPSTREAM_TR_N], tr_resumed[UPSTREAM_TR_N];
	bool can[UPSTREAM_TR_N];
	/* DoH streams that ended in error, refused and sent again; GOAWAYs; PINGs (doh.h) */
	uint64_t doh_errors, doh_refused, doh_goaways, doh_pings;
	uint64_t doh_resent; /* ...of the errors, the queries sent once more to another upstream */
	uint64_t rtt[UPSTREAM_RTT_BUCKETS]; /* answers by latency bucket (not cumulative) */
	uint64_t rtt_sum_us;
	uint64_t srtt_us_sum; /* the smoothed RTTs of the pools that have one, added up... */
	unsigned int srtt_n;  /* ...and how many */
	unsigned int open;    /* connections open now */
	bool usable;
};

/*
 * upstream_pool_snapshot - add this pool's view of upstream i to *s (read from another thread:
 * each counter is read whole, but not all of them at the same instant).
 */
void upstream_pool_snapshot(const struct upstream_pool *pool, size_t i,
			    struct upstream_snapshot *s);

/* upstream_pool_count, upstream_pool_name - the pool's upstreams, "ADDR@PORT#NAME". */
size_t upstream_pool_count(const struct upstream_pool *pool);
const char *upstream_pool_name(const struct upstream_pool *pool, size_t i);

/*
 * upstream_pool_retry - end every upstream's back-off now: the next query may try it at once
 * (another worker found the network reachable again: unreachable.h). Failures still count.
 */
void upstream_pool_retry(struct upstream_pool *pool);

/*
 * upstream_pool_submit - send uq. complete() may run before this returns (no usable
 * upstream): the caller must not touch uq after the call unless it knows otherwise.
 */
void upstream_pool_submit(struct upstream_pool *pool, struct upstream_query *uq);

/*
 * upstream_query_cancel - forget uq (its deadline passed, or its client went away); a late
 * answer is ignored. Stalled connections are found by their own timers (see --stall-timeout),
 * not by the queries that timed out on them.
 */
void upstream_query_cancel(struct upstream_pool *pool, struct upstream_query *uq);

/*
 * upstream_query_abandon - uq's client was answered without it (its deadline passed), but
 * the upstream may still be working on it: when uq went out on a connection, it keeps its
 * slot there, counted in that connection's window, until its late answer or the connection's
 * close, and complete() is called once more at that end: with answer and r NULL and err 0
 * (it was answered; the answer is not used) or the error the connection closed with:
 * -ETIMEDOUT only when dotgw closed it because answers stopped on it while the upstream
 * answered on its other connections, so that it may well still hold uq.
 * upstream_query_cancel() still ends it sooner, without a call. Returns false, after what
 * upstream_query_cancel() does, when uq was not out on an open connection (waiting, on one
 * still opening, or done): complete() is not called again.
 */
bool upstream_query_abandon(struct upstream_pool *pool, struct upstream_query *uq);

#endif
