/*
 * unreachable.h - --unreachable plaintext, the captive-portal escape: while no upstream has
 * answered for --unreachable-after seconds although queries needed one, captured queries go
 * unencrypted to the address their client asked (the "asked" path of --forward SUFFIX=asked),
 * until an upstream answers again. The default, --unreachable servfail, never does this.
 *
 * The state is one per process, shared by the workers, in one atomic word:
 *   REACHABLE  0          no query failed for want of an upstream since the last answer
 *   FAILING    T          the first such failure since the last answer was at T (ms, never 0)
 *   PLAINTEXT  T | bit 63 FAILING for after_ms at least: queries pass in plaintext
 * A failure (SERVFAIL: no usable upstream, attempts used up, deadline) turns REACHABLE into
 * FAILING(now); later failures keep T. unreachable_check() at now >= T + after_ms turns
 * FAILING into PLAINTEXT: the episode starts (a warning). An upstream's answer turns either
 * into REACHABLE: the episode ends (a warning naming the upstream). So a fresh start, or an
 * idle spell, is REACHABLE: without a failed query nothing ever goes out in plaintext, and the
 * first query after a long silence is tried upstream first. Only queries for the configured
 * upstreams count, and pass: not --forward targets, not a designated resolver's (--upstream
 * asked).
 *
 * While PLAINTEXT, no client query goes to the pool, so each worker sends a probe of its own
 * (". NS") once a second through its pool (unreachable_probe): the pool's back-off (0.5 s
 * doubling to 30 s) spaces the real connection attempts, and the first answer ends the
 * episode, at once for every worker; and every worker's pool then ends its back-off
 * (unreachable_probe_resumed), so that its next query tries the upstreams at once.
 *
 * Times are CLOCK_MONOTONIC milliseconds (loop_now_ms); every field is atomic: workers write,
 * the metrics thread reads.
 */
#ifndef DOTGW_UNREACHABLE_H
#define DOTGW_UNREACHABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dotgw/dns.h"
#include "dotgw/loop.h"
#include "dotgw/upstream.h"

#define UNREACHABLE_PLAINTEXT (1ULL << 63)
#define UNREACHABLE_PROBE_MS  1000U /* a worker's probe interval while PLAINTEXT */

struct unreachable {
	_Atomic uint64_t state;		  /* see above */
	_Atomic uint64_t passed;	  /* queries passed in plaintext, in all */
	_Atomic uint64_t episodes;	  /* PLAINTEXT episodes begun */
	_Atomic uint64_t since_ms;	  /* when the current episode began */
	_Atomic uint64_t passed_at_start; /* passed when it began */
	_Atomic uint64_t ends;		  /* PLAINTEXT episodes ended */
};

/* The daemon's state: every worker's frontend and the metrics use this one. */
extern struct unreachable unreachable_process;

/* unreachable_failed - a query failed for want of an upstream at now_ms. */
void unreachable_failed(struct unreachable *u, uint64_t now_ms);

/*
 * unreachable_answered - an upstream (by, for the log; NULL: unnamed) answered at now_ms.
 * Returns true when that ended a PLAINTEXT episode (logged at warning level).
 */
bool unreachable_answered(struct unreachable *u, uint64_t now_ms, const char *by);

/*
 * unreachable_check - does a query at now_ms pass in plaintext (after_ms: --unreachable-after)?
 * Starts the episode when its time has come (logged at warning level).
 */
bool unreachable_check(struct unreachable *u, uint64_t after_ms, uint64_t now_ms);

/* unreachable_plaintext - is an episode on (the gauge)? */
bool unreachable_plaintext(const struct unreachable *u);

/* unreachable_count_pass - one query passed in plaintext. */
void unreachable_count_pass(struct unreachable *u);

/* unreachable_render - the Prometheus lines: gauge, queries passed, episodes. */
void unreachable_render(const struct unreachable *u, FILE *out);

/*
 * A worker's probe: while PLAINTEXT, an ". NS" query through *pool (the frontend's current
 * pool: a reload may replace it) every UNREACHABLE_PROBE_MS, one at a time. Its answer calls
 * unreachable_answered(); it stops by itself once the episode is over.
 */
struct unreachable_probe {
	struct loop *loop;
	struct upstream_pool *const *pool;
	struct unreachable *u;
	struct loop_timer timer;
	struct upstream_query uq;
	struct upstream_pool *sent_to; /* the pool uq is in; NULL: none in flight */
	struct dns_msg m;
	uint64_t sent_ms, timeout_ms;
	uint64_t ends_seen; /* u->ends when this worker last looked */
	uint32_t allowed;
	uint8_t msg[17];
};

/* unreachable_probe_init - a stopped probe of loop's worker. 0 or -EINVAL (never expected). */
int unreachable_probe_init(struct unreachable_probe *p, struct loop *loop,
			   struct upstream_pool *const *pool, struct unreachable *u);

/*
 * unreachable_probe_kick - a query just passed in plaintext: keep probing (to the upstreams
 * of allowed, as upstream_query.allowed; each probe given timeout_ms), starting now if no
 * probe is in flight.
 */
void unreachable_probe_kick(struct unreachable_probe *p, uint32_t allowed, uint64_t timeout_ms);

/*
 * unreachable_probe_resumed - has an episode ended (in any worker) since this worker last
 * asked? Then its pool's back-off should end too (upstream_pool_retry): its upstreams failed
 * only because the network was unreachable, and its clients must not wait up to 30 s more.
 */
bool unreachable_probe_resumed(struct unreachable_probe *p);

/* unreachable_probe_stop - cancel the timer and the probe in flight (before the pool goes). */
void unreachable_probe_stop(struct unreachable_probe *p);

#endif
