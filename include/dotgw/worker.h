/*
 * worker.h - the worker threads: one event loop each, with its own upstream pool, frontend and
 * (nfqueue mode) queue; the configuration they share by reference; and the reload handshake,
 * by which the main thread hands each worker a new configuration and pool.
 */
#ifndef DOTGW_WORKER_H
#define DOTGW_WORKER_H

#include <stdbool.h>

#include "dotgw/config.h"

struct dnstap;
struct stats_snapshot;
struct upstream_pool;

/*
 * A configuration shared by the main thread and the workers' pools; freed by whoever drops
 * the last reference (a pool retired by a reload is freed only once drained, and it points
 * into its configuration). pool_open: the count of cfg.pool_open (config.h), the connections
 * open per upstream in the pools of this configuration, which the workers share.
 */
struct config_ref {
	struct config cfg;
	int refs;
	_Atomic unsigned int pool_open[CONFIG_MAX_UPSTREAMS];
};

/* config_ref_new - config_init'ed with cfg.pool_open set, one reference; NULL without memory. */
struct config_ref *config_ref_new(void);
void config_ref_get(struct config_ref *r);
/* config_ref_put - drop a reference (NULL: nothing); the last one frees. */
void config_ref_put(struct config_ref *r);

struct workers;

/* workers_new - n workers, nothing open yet; 0 or -ENOMEM. */
int workers_new(struct workers **out, unsigned int n);
unsigned int workers_count(const struct workers *ws);

/*
 * workers_open - everything privileged the workers need (loops, listeners, raw sockets,
 * queues, upstream pools), opened in the main thread with ref's configuration. 0 or -errno
 * (logged); on failure workers_close tears down what was opened.
 */
int workers_open(struct workers *ws, struct config_ref *ref);

struct nftset_link;

/* workers_set_egress - --egress: the workers add to the groups' sets through link. */
void workers_set_egress(struct workers *ws, struct nftset_link *link);

/* workers_set_dnstap - give worker i dnstap's queue i (dt NULL: stop logging). */
void workers_set_dnstap(struct workers *ws, struct dnstap *dt);

/* workers_start - a thread per worker; 0 or -errno (logged). workers_stop joins them. */
int workers_start(struct workers *ws);
void workers_stop(struct workers *ws);
/*
 * workers_leave - handover (handover.h): each worker's listeners leave their SO_REUSEPORT
 * groups; the workers go on serving what they hold until workers_stop.
 */
void workers_leave(struct workers *ws);

/* workers_close - close what workers_open opened (after workers_stop). The counters stay
 * readable until workers_free. */
void workers_close(struct workers *ws);
void workers_free(struct workers *ws);

/* workers_snapshot - fill s (but its mode) with the counters, in flight and upstreams. */
void workers_snapshot(struct workers *ws, struct stats_snapshot *s);

/* workers_log - with several workers, a line per worker with its queries and cache hits
 * (how evenly the kernel spread the clients). */
void workers_log(struct workers *ws);

/*
 * The reload handshake (main thread): workers_reload_busy - is a previous reload still
 * draining? workers_reload_pools - a new pool per worker for cfg, in *pools (0 or -errno);
 * workers_reload_commit - hand each worker ref (one reference each) and its pool, taking
 * pools; workers_reload_abort - free pools that were not handed over.
 */
bool workers_reload_busy(struct workers *ws);
int workers_reload_pools(struct workers *ws, const struct config *cfg,
			 struct upstream_pool ***pools);
void workers_reload_commit(struct workers *ws, struct config_ref *ref,
			   struct upstream_pool **pools);
void workers_reload_abort(struct workers *ws, struct upstream_pool **pools);

#endif
